{% include "provisioning/scripts/_header.sh" with title="CLI agents" %}
EIDOLON_USER={{ user_q }}
{% for cli in clis %}# maxportal-cli: {{ cli.kind }} {{ cli.package }}
{% endfor %}
# kind, npm package and the command it installs, one per agent (provisioning plan, phase 4).
CLIS=({% for cli in clis %}
    {{ cli.kind }}:{{ cli.package_q }}:{{ cli.command }}{% endfor %}
)

log() { printf 'maxportal: %s\n' "$*"; }

command -v npm >/dev/null || { echo "maxportal: npm is missing: run the base config step first" >&2; exit 1; }

# Installed globally as root so systemd finds them in /usr/bin; only missing ones are installed.
for entry in "${CLIS[@]}"; do
    IFS=: read -r kind package command_name <<< "$entry"
    if npm ls -g --depth=0 "$package" >/dev/null 2>&1; then
        log "$kind: $package already installed"
    else
        log "$kind: installing $package"
        npm install -g --no-fund --no-audit "$package"
    fi
    command -v "$command_name" >/dev/null || { echo "maxportal: $kind: $command_name not on PATH after install" >&2; exit 1; }
done

# Verify each CLI runs for the Eidolon's user and report its version on one parsable line.
failed=0
for entry in "${CLIS[@]}"; do
    IFS=: read -r kind package command_name <<< "$entry"
    if ! output="$(sudo -u "$EIDOLON_USER" -H -- "$command_name" --version 2>&1 </dev/null)"; then
        echo "maxportal: $kind: '$command_name --version' failed: $output" >&2
        failed=1
        continue
    fi
    version="$(printf '%s\n' "$output" | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]*' | head -n 1 || true)"
    if [ -z "$version" ]; then
        echo "maxportal: $kind: no version in '$command_name --version' output: $output" >&2
        failed=1
        continue
    fi
    printf 'MAXPORTAL_VERSION %s %s\n' "$kind" "$version"
done
exit "$failed"
