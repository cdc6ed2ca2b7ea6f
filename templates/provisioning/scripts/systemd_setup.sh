{% include "provisioning/scripts/_header.sh" with title="systemd units" %}
EIDOLON_USER={{ user_q }}
EIDOLON_HOME={{ home_q }}
UNITS=({% for unit in units %}{{ unit }}{% if not forloop.last %} {% endif %}{% endfor %})

log() { printf 'maxportal: %s\n' "$*"; }

id -u "$EIDOLON_USER" >/dev/null 2>&1 || { echo "maxportal: user $EIDOLON_USER is missing: run the base config step first" >&2; exit 1; }

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT

cat > "$staging/run-agent.sh" <<'MAXPORTAL_RUN_AGENT'
{% include "provisioning/scripts/run-agent.sh" %}MAXPORTAL_RUN_AGENT

cat > "$staging/max-agent@.service" <<'MAXPORTAL_UNIT'
{% include "provisioning/scripts/max-agent@.service" %}MAXPORTAL_UNIT

install -d -m 0750 -o "$EIDOLON_USER" -g "$EIDOLON_USER" "${EIDOLON_HOME}/bin"
if ! cmp -s "$staging/run-agent.sh" "${EIDOLON_HOME}/bin/run-agent.sh"; then
    install -m 0755 -o "$EIDOLON_USER" -g "$EIDOLON_USER" "$staging/run-agent.sh" "${EIDOLON_HOME}/bin/run-agent.sh"
    log "wrote ${EIDOLON_HOME}/bin/run-agent.sh"
fi

UNIT_FILE=/etc/systemd/system/max-agent@.service
if ! cmp -s "$staging/max-agent@.service" "$UNIT_FILE"; then
    install -m 0644 -o root -g root "$staging/max-agent@.service" "$UNIT_FILE"
    log "wrote $UNIT_FILE"
fi
systemctl daemon-reload

for unit in "${UNITS[@]}"; do
    if systemctl is-enabled --quiet "$unit"; then
        log "$unit already enabled"
    else
        systemctl enable "$unit"
    fi
done
for unit in "${UNITS[@]}"; do
    printf 'MAXPORTAL_UNIT %s %s\n' "$unit" "$(systemctl is-enabled "$unit" || true)"
done
