"""The API fuzz run of CI: schemathesis over /api/v1/openapi.json with a valid token, bounded.

    .venv/bin/python scripts/api_fuzz.py            # DATABASE_URL must name a PostgreSQL database

It makes a fresh database beside DATABASE_URL's (``<name>_fuzz``), migrates it, loads the MAX
plan, issues a token for LILLy (the LeadGen Eidolon: she may ingest and move leads), starts the
portal (uvicorn, as in production) on a loopback port, runs schemathesis with the checks below
for at most MAXPORTAL_FUZZ_MAX_EXAMPLES cases per operation and MAXPORTAL_FUZZ_MAX_TIME seconds,
stops the server and exits with schemathesis' status: any finding fails CI. Nothing leaves
loopback. Options after ``--`` go to schemathesis (e.g. ``-- --seed 7``).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _fuzz_database(url: str) -> str:
    """A fresh ``<name>_fuzz`` database on the same (loopback) server; its URL."""
    parts = urllib.parse.urlparse(url)
    if parts.scheme not in ("postgres", "postgresql") or parts.hostname not in LOOPBACK:
        sys.exit(f"api_fuzz: DATABASE_URL must name a PostgreSQL database on loopback, not {url!r}")
    name = f"{parts.path.lstrip('/') or 'maxportal'}_fuzz"
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return parts._replace(path=f"/{name}").geturl()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env, *args) -> str:
    return subprocess.run([str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, check=True,  # noqa: S603
                          capture_output=True, text=True).stdout


def _wait_until_up(url: str, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"api_fuzz: the portal exited with {server.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"api_fuzz: the portal did not answer {url} within {timeout} s")


def _seed_leads(base: str, token: str, count: int = 8) -> list[str]:
    """Leads for the fuzzer to move (random ids would only ever find 404s)."""
    ids = []
    for n in range(count):
        body = json.dumps({"company": f"Fuzz {n} GmbH", "email": f"a@fuzz{n}.example"}).encode()
        request = urllib.request.Request(  # noqa: S310 (loopback)
            f"{base}/api/v1/leads", data=body, method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            ids.append(json.loads(response.read())["id"])
    return ids


def _config(lead_ids: list[str]) -> str:
    """A schemathesis.toml: most generated lead ids are the seeded leads' (some stay random: 404s)."""
    handle, path = tempfile.mkstemp(prefix="maxportal-fuzz-", suffix=".toml")
    with os.fdopen(handle, "w") as config:
        config.write(f"[dictionaries.leads]\nvalues = {json.dumps(lead_ids)}\n\n")
        config.write('[parameters]\n"path.lead_id" = { dictionary = "leads", probability = 0.8 }\n')
    return path


def main(extra: list[str]) -> int:
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url:
        sys.exit("api_fuzz: set DATABASE_URL to a PostgreSQL database (the fuzz run is on PostgreSQL)")
    port = int(os.environ.get("MAXPORTAL_FUZZ_PORT") or _free_port())
    env = {
        **os.environ,
        "DATABASE_URL": _fuzz_database(database_url),
        "DJANGO_DEBUG": "1",  # a 500 shows its traceback in the report
        # The fuzz run sends thousands of requests from one token; the rate limit has its own tests.
        "MAXPORTAL_API_RATE_LIMIT": os.environ.get("MAXPORTAL_FUZZ_RATE_LIMIT", "1000000"),
        "CELERY_BROKER_URL": "filesystem://",
        "MAXPORTAL_CACHE_URL": "",
        "MAXPORTAL_SIGNAL_MIRROR_ROOT": "",
    }
    _manage(env, "migrate", "--no-input", "-v0")
    _manage(env, "load_max_plan")
    token = _manage(env, "issue_token", "lilly", "--name", "api fuzz run").strip().splitlines()[-1]

    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(  # noqa: S603
        [str(BIN / "uvicorn"), "maxportal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--workers", "1"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    config = ""
    try:
        _wait_until_up(f"{base}/api/v1/ping", server)
        config = _config(_seed_leads(base, token))
        command = [
            str(BIN / "schemathesis"), "--config-file", config, "run", f"{base}/api/v1/openapi.json",
            "--header", f"Authorization: Bearer {token}",
            "--checks", CHECKS,
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", os.environ.get("MAXPORTAL_FUZZ_MAX_EXAMPLES", "60"),
            "--max-time", os.environ.get("MAXPORTAL_FUZZ_MAX_TIME", "240"),
            # One worker: schemathesis' threads can trip CPython 3.11's "AST constructor recursion depth
            # mismatch" (ast.parse in two threads at once), an error of the tool, not of the portal.
            "--workers", os.environ.get("MAXPORTAL_FUZZ_WORKERS", "1"),
            "--request-timeout", "40",
            "--seed", os.environ.get("MAXPORTAL_FUZZ_SEED", "20261201"),
            "--generation-database", "none",
            "--output-sanitize", "true",
            "--no-color",
            *extra,
        ]
        print(f"api_fuzz: schemathesis against {base} (checks: {CHECKS})", flush=True)
        started = time.monotonic()
        status = subprocess.run(command, cwd=ROOT, env=env).returncode  # noqa: S603
        print(f"api_fuzz: schemathesis exited {status} after {time.monotonic() - started:.0f} s", flush=True)
        return status
    finally:
        if config:
            os.unlink(config)
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args[args.index("--") + 1:] if "--" in args else []))
