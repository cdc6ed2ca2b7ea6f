{% include "provisioning/scripts/_header.sh" with title="Signal directory mount check (inside the container)" %}
EIDOLON_USER={{ user_q }}
MOUNT_POINT={{ mount_point_q }}
INBOX={{ container_inbox_q }}

if ! mountpoint -q "$MOUNT_POINT"; then
    echo "maxportal: $MOUNT_POINT is not mounted in CT{{ vmid }}: set mp0 (pct set {{ vmid }} -mp0 {{ shared_root }},mp={{ mount_point }}) and restart the container" >&2
    exit 1
fi
if [ ! -d "$INBOX" ]; then
    echo "maxportal: $INBOX is missing inside CT{{ vmid }}: run the signal dir step on the node first" >&2
    exit 1
fi
probe="${INBOX}/.maxportal-probe-$$"
if sudo -u "$EIDOLON_USER" -H -- touch "$probe" 2>/dev/null; then
    rm -f "$probe"
    printf 'MAXPORTAL_INBOX %s writable\n' "$INBOX"
else
    echo "maxportal: $EIDOLON_USER cannot write to $INBOX" >&2
    exit 1
fi
