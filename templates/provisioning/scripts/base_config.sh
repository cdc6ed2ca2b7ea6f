{% include "provisioning/scripts/_header.sh" with title="Base configuration" %}
EIDOLON_USER={{ user_q }}
EIDOLON_HOME={{ home_q }}
NODE_MAJOR={{ node_major }}
PACKAGES=({% for package in base_packages %}{{ package }}{% if not forloop.last %} {% endif %}{% endfor %})

log() { printf 'maxportal: %s\n' "$*"; }

# The full upgrade runs once per container (the plan's "apt update && apt upgrade -y");
# re-runs only add what is missing.
UPGRADE_MARKER=/var/lib/maxportal/base-upgraded
if [ ! -e "$UPGRADE_MARKER" ]; then
    log "first run: apt-get update and upgrade"
    apt-get update
    apt-get -y -o Dpkg::Options::=--force-confold upgrade
    install -d -m 0755 /var/lib/maxportal
    touch "$UPGRADE_MARKER"
fi

missing=()
for package in "${PACKAGES[@]}"; do
    # Captured, not piped into grep -q: under pipefail an early grep exit could read as "missing".
    status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
    if [ "$status" != "install ok installed" ]; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
else
    log "base packages already installed"
fi

# Node.js 20 LTS from NodeSource (Debian 12 ships 18), the repository setup_20.x would add,
# written out so it is visible here and not piped from curl into bash.
node_version="$(node --version 2>/dev/null || true)"
if [[ "$node_version" == "v${NODE_MAJOR}."* ]]; then
    log "Node.js ${node_version} already installed"
else
    log "installing Node.js ${NODE_MAJOR} from NodeSource"
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL {{ nodesource_key_url_q }} | gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg
    chmod 0644 /etc/apt/keyrings/nodesource.gpg
    printf 'deb [signed-by=/etc/apt/keyrings/nodesource.gpg] %s nodistro main\n' {{ nodesource_repo_url_q }} \
        > /etc/apt/sources.list.d/nodesource.list
    apt-get update
    apt-get install -y nodejs
fi

# The Eidolon's user, with passwordless sudo in its own sudoers.d file (validated before use).
if id -u "$EIDOLON_USER" >/dev/null 2>&1; then
    log "user $EIDOLON_USER exists"
else
    log "creating user $EIDOLON_USER"
    useradd -m -s /bin/bash "$EIDOLON_USER"
fi
SUDOERS_FILE="/etc/sudoers.d/maxportal-${EIDOLON_USER}"
sudoers_tmp="$(mktemp)"
trap 'rm -f "$sudoers_tmp"' EXIT
printf '%s ALL=(ALL) NOPASSWD:ALL\n' "$EIDOLON_USER" > "$sudoers_tmp"
visudo -c -q -f "$sudoers_tmp"
if ! cmp -s "$sudoers_tmp" "$SUDOERS_FILE"; then
    install -m 0440 -o root -g root "$sudoers_tmp" "$SUDOERS_FILE"
    log "wrote $SUDOERS_FILE"
fi
visudo -c -q

for folder in workspace signals logs sessions bin; do
    install -d -m 0750 -o "$EIDOLON_USER" -g "$EIDOLON_USER" "${EIDOLON_HOME}/${folder}"
done

node_version="$(node --version)"
case "$node_version" in
    "v${NODE_MAJOR}."*) ;;
    *) echo "maxportal: expected Node.js ${NODE_MAJOR}, found ${node_version}" >&2; exit 1 ;;
esac
printf 'MAXPORTAL_VERSION node %s\n' "${node_version#v}"
printf 'MAXPORTAL_VERSION npm %s\n' "$(npm --version)"
printf 'MAXPORTAL_VERSION python3 %s\n' "$(python3 --version | cut -d' ' -f2)"
log "base configuration done"
