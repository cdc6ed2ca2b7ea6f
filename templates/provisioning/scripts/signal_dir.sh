{% include "provisioning/scripts/_header.sh" with title="Signal directory (on the Proxmox node)" %}
VMID={{ vmid }}
EIDOLON_USER={{ user_q }}
SHARED_ROOT={{ shared_root_q }}
SIGNAL_ROOT={{ signal_root_q }}
INBOX={{ inbox_q }}
# Unprivileged containers see host uid IDMAP_BASE + n as their uid n.
IDMAP_BASE={{ idmap_base }}

log() { printf 'maxportal: %s\n' "$*"; }

install -d -m 0755 "$SHARED_ROOT" "${SHARED_ROOT}/max-pipeline" "$SIGNAL_ROOT"
install -d -m 0770 "$INBOX"

# Hand the inbox to the Eidolon's user as the container sees it, once that user exists.
if uid="$(pct exec "$VMID" -- id -u "$EIDOLON_USER" 2>/dev/null)" \
    && gid="$(pct exec "$VMID" -- id -g "$EIDOLON_USER" 2>/dev/null)"; then
    chown "$((IDMAP_BASE + uid)):$((IDMAP_BASE + gid))" "$INBOX"
    log "$INBOX owned by CT${VMID}'s $EIDOLON_USER (host uid $((IDMAP_BASE + uid)))"
else
    log "CT${VMID} is not running or has no user $EIDOLON_USER yet: $INBOX stays root-owned"
fi
printf 'MAXPORTAL_INBOX %s\n' "$INBOX"
