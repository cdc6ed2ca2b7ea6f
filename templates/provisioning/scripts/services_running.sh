{% include "provisioning/scripts/_header.sh" with title="Agent services running" %}
UNITS=({% for unit in units %}{{ unit }}{% if not forloop.last %} {% endif %}{% endfor %})
# How long the units get to settle after start before they are judged.
SETTLE_SECONDS={{ settle_seconds }}

systemctl start "${UNITS[@]}"

deadline=$((SECONDS + SETTLE_SECONDS))
while :; do
    inactive=0
    for unit in "${UNITS[@]}"; do
        systemctl is-active --quiet "$unit" || inactive=1
    done
    if [ "$inactive" -eq 0 ] || [ "$SECONDS" -ge "$deadline" ]; then
        break
    fi
    sleep 1
done

failed=0
for unit in "${UNITS[@]}"; do
    state="$(systemctl is-active "$unit" || true)"
    printf 'MAXPORTAL_UNIT %s %s\n' "$unit" "$state"
    if [ "$state" != "active" ]; then
        failed=1
        journalctl -u "$unit" -n 20 --no-pager >&2 || true
    fi
done
exit "$failed"
