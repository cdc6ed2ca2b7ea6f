{% include "provisioning/scripts/_header.sh" with title="Repository (sparse checkout)" %}
EIDOLON_USER={{ user_q }}
WORKSPACE={{ workspace_q }}
REPO_URL={{ repo_url_q }}
SPARSE_PATHS=({% for path in sparse_paths %}{{ path }}{% if not forloop.last %} {% endif %}{% endfor %})

log() { printf 'maxportal: %s\n' "$*"; }
as_user() { sudo -u "$EIDOLON_USER" -H -- "$@"; }

if [ -z "$REPO_URL" ]; then
    echo "maxportal: no repository URL: set MAXPORTAL_AGENT_REPO_URL in the portal's environment and run this step again" >&2
    exit 64
fi
command -v git >/dev/null || { echo "maxportal: git is missing: run the base config step first" >&2; exit 1; }
install -d -m 0750 -o "$EIDOLON_USER" -g "$EIDOLON_USER" "$WORKSPACE"

if [ -d "${WORKSPACE}/.git" ]; then
    origin="$(as_user git -C "$WORKSPACE" remote get-url origin)"
    if [ "$origin" != "$REPO_URL" ]; then
        echo "maxportal: $WORKSPACE is a clone of $origin, not $REPO_URL: move it away or fix the setting" >&2
        exit 1
    fi
    log "updating the clone in $WORKSPACE"
    as_user git -C "$WORKSPACE" sparse-checkout set --cone "${SPARSE_PATHS[@]}"
    as_user git -C "$WORKSPACE" pull --ff-only
else
    if [ -n "$(ls -A "$WORKSPACE")" ]; then
        echo "maxportal: $WORKSPACE is not empty and not a clone: move its files away and run again" >&2
        exit 1
    fi
    log "cloning into $WORKSPACE (sparse: ${SPARSE_PATHS[*]})"
    as_user git clone --filter=blob:none --no-checkout "$REPO_URL" "$WORKSPACE"
    as_user git -C "$WORKSPACE" sparse-checkout set --cone "${SPARSE_PATHS[@]}"
    as_user git -C "$WORKSPACE" checkout
fi
printf 'MAXPORTAL_REPO %s %s\n' "$(as_user git -C "$WORKSPACE" rev-parse HEAD)" "$REPO_URL"
