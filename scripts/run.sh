#!/usr/bin/env bash
# make run: prepare the database, then run the web server, a Celery worker and Celery beat together
# (and the local Proxmox when it is the configured one). Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST=${MAXPORTAL_BIND:-127.0.0.1}
PORT=${MAXPORTAL_PORT:-8000}

mkdir -p var/celery/queue var/celery/processed var/log
# DEBUG off unless asked (DJANGO_DEBUG=1 make run): a mistyped URL shows the product's 404, not
# Django's list of every URL pattern. Plain HTTP on loopback: no HTTPS redirect, no secure-only
# cookies, no HSTS. The secret key is generated once and kept in var/ (mode 0600).
export DJANGO_DEBUG=${DJANGO_DEBUG:-0}
if [ "$DJANGO_DEBUG" = "0" ]; then
  if [ -z "${DJANGO_SECRET_KEY:-}" ]; then
    if [ ! -s var/secret-key ]; then
      (umask 077; $PY -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret-key)
    fi
    DJANGO_SECRET_KEY=$(cat var/secret-key)
    export DJANGO_SECRET_KEY
  fi
  export DJANGO_SECURE_SSL_REDIRECT=${DJANGO_SECURE_SSL_REDIRECT:-0}
  export DJANGO_SECURE_COOKIES=${DJANGO_SECURE_COOKIES:-0}
  export DJANGO_SECURE_HSTS_SECONDS=${DJANGO_SECURE_HSTS_SECONDS:-0}
fi
$PY manage.py migrate --no-input
$PY manage.py collectstatic --no-input -v0
$PY manage.py load_max_plan
# Demo leads for the sales pages until agents move real ones (only into an empty pipeline; 0: none).
if [ "${MAXPORTAL_DEMO_LEADS:-1}" = "1" ]; then $PY manage.py seed_demo_leads; fi
if $PY manage.py help local_proxmox >/dev/null 2>&1 && [ "${MAXPORTAL_LOCAL_PROXMOX:-1}" = "1" ]; then
  WITH_LOCAL_PVE=1
else
  WITH_LOCAL_PVE=0
fi

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo "stopping maxportal..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

if [ "$WITH_LOCAL_PVE" = "1" ]; then
  $PY manage.py local_proxmox --configure-host > var/log/local-proxmox.log 2>&1 &
  pids+=($!)
fi
.venv/bin/celery -A maxportal worker -P threads -c "${MAXPORTAL_WORKER_CONCURRENCY:-24}" -l info \
  > var/log/worker.log 2>&1 &
pids+=($!)
.venv/bin/celery -A maxportal beat -l info --pidfile= > var/log/beat.log 2>&1 &
pids+=($!)
.venv/bin/uvicorn maxportal.asgi:application --host "$HOST" --port "$PORT" --log-level warning &
pids+=($!)

echo
echo "maxportal is running at http://$HOST:$PORT/   (worker, beat$( [ "$WITH_LOCAL_PVE" = 1 ] && echo ", local Proxmox") logs in var/log/)"
$PY manage.py ensure_admin --url "http://$HOST:$PORT/admin/"
echo "Press Ctrl-C to stop."
wait -n "${pids[@]}"
echo "a maxportal process exited; see var/log/"
