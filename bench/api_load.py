#!/usr/bin/env python3
"""Load test of the agents' API as it runs in production, with PostgreSQL's own ceiling beside it.

    .venv/bin/python bench/api_load.py            # the full run (about 3 minutes)
    .venv/bin/python bench/api_load.py --quick    # a smoke run (under a minute)

What it does, everything on loopback, bounded in count and time, and cleaned up on exit, on an
error or on Ctrl-C (the server is stopped, the databases it created are dropped):

1. creates a fresh PostgreSQL database (``maxportal_bench``), migrates it, loads the MAX plan, issues
   one API token per Eidolon (``eidolons.services.api_token_issue``) and seeds leads for the
   handoff phases (9 Eidolons, 36 CLI agents, as ``max_plan_load`` creates them);
2. measures the same PostgreSQL's TPC-B rate with pgbench on a scratch database: the ceiling;
3. starts the portal the way the README recommends for production: uvicorn serving
   ``maxportal.asgi:application`` on 127.0.0.1 (a free port), 2 workers (one per core: a worker is
   one Python process under one GIL; PostgreSQL and this client need the rest of the CPU, and the
   waiting long-polls hold no worker), DJANGO_DEBUG=0 with a generated secret key,
   DJANGO_SECURE_SSL_REDIRECT=0 (no TLS proxy in front on loopback), ALLOWED_HOSTS 127.0.0.1,
   reused database connections, Redis as the cache holding the rate-limit counters (shared by the
   workers) and as the broker /healthz checks; then waits for /healthz. "Reused connections" under
   ASGI means psycopg's pool (DATABASE_POOL_MAX_SIZE, 8 a worker): with CONN_MAX_AGE every request
   thread opens a connection of its own and leaves it open (``--db-connections persistent`` shows
   it). The portal logs in as its own role (maxportal_bench, CONNECTION LIMIT 60), so a leak fails
   the bench, not PostgreSQL for everyone else on the machine;
4. runs the phases:
   mixed     36 agents (9 Eidolons x 4 agents) work the pipeline: LILLy's agents ingest leads, every
             stage owner's agents long-poll their inbox, hand the lead on (Atlas's complete it) and
             acknowledge the signal, the core Eidolons assign tasks, and everyone sends heartbeats;
   floor     closed loop: GET /api/v1/ping (no auth, no database): what any request costs;
   capacity  closed loop: 36 clients hand off seeded leads as fast as the server answers;
   rate      open loop: handoffs offered at a tenth of pgbench's rate, each timed from the moment it
             was due (so a server falling behind shows in the latency, not in a lower offered rate);
   wakeup    1,000 long-polls parked on the 9 Eidolons' inboxes (they share the 9 tokens); a sample
             of handoffs, each timed from its response (the commit) to the long-poll that returns
             its signal;
5. prints requests per second and p50/p99 latency per endpoint for each phase, where the CPU went,
   and a PASS/MISS line per target; ``--json FILE`` writes every figure.

The API's rate limit is raised for the run (MAXPORTAL_API_RATE_LIMIT=1000000000 per 60 s window):
36 agents sharing 9 tokens would otherwise be throttled at 1,200 requests a minute per token, and
the limit's cost (two Redis round trips per request) is still paid. The signal file mirror is off.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict, deque
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KINDS = ("claude", "gemini", "codex", "copilot")
PIPELINE = ["LeadGen", "FirstResponder", "Scoping", "Orchestra", "Closer", "Onboarding", "DeliveryPM"]
HANDOFF_STAGES = PIPELINE[:-1]  # a lead in DeliveryPM is completed, not handed off
DB_NAME_RE = re.compile(r"^maxportal_bench[a-z0-9_]*$")  # never touch a database that is not ours
WAKE_TARGET_MS = 50.0
HANDOFF_P99_TARGET_MS = 50.0


# --- inside Django: migrate, load the plan, issue tokens, seed leads (runs as a subprocess) -------


def django_setup(spec: dict) -> dict:
    """Runs in a child process with the server's environment (same database, same secret key)."""
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from eidolons.models import Eidolon
    from eidolons.services import api_token_issue
    from leads.models import Lead
    from provisioning.plan import max_plan_load

    call_command("migrate", interactive=False, verbosity=0)
    max_plan_load()
    eidolons = {}
    for eidolon in Eidolon.objects.order_by("pk"):
        _, raw = api_token_issue(eidolon=eidolon, name="bench/api_load.py")
        eidolons[eidolon.slug] = {"name": eidolon.name, "stage": eidolon.stage, "token": raw}
    # Leads for the handoff phases, written directly (the ingest path is measured in the mixed
    # phase): in progress, spread over the six stages that hand off, unique domains.
    now = timezone.now()
    pools: dict[str, dict[str, list[str]]] = {}
    rows = []
    for pool, per_stage in spec["pools"].items():
        pools[pool] = {}
        for stage in HANDOFF_STAGES:
            ids = []
            for i in range(per_stage):
                domain = f"{pool}-{stage.lower()}-{i}.bench.example"
                lead = Lead(
                    company=f"Bench {pool} {stage} {i}", contact_name="Bench Buyer", email=f"buyer@{domain}",
                    email_normalized=f"buyer@{domain}", company_domain=domain, source="other", stage=stage,
                    status="in_progress", stage_entered_at=now, data={"bench": True},
                )
                rows.append(lead)
                ids.append(str(lead.pk))
            pools[pool][stage] = ids
    Lead.objects.bulk_create(rows, batch_size=2000)
    return {"eidolons": eidolons, "pools": pools}


# --- processes, databases, clean-up ----------------------------------------------------------------


class Resources:
    """Everything this run started or created, stopped and dropped by cleanup() whatever happens."""

    def __init__(self, pg: dict):
        self.pg = pg
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.databases: list[str] = []
        self.roles: list[str] = []
        self.keep_databases = False

    def psql(self, sql: str, db: str = "postgres", timeout: float = 60) -> str:
        out = subprocess.run(
            ["psql", "-h", self.pg["host"], "-p", str(self.pg["port"]), "-U", self.pg["user"], "-d", db,
             "-v", "ON_ERROR_STOP=1", "-X", "-q", "-At", "-c", sql],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql failed ({sql[:80]}...): {out.stderr.strip()}")
        return out.stdout.strip()

    def create_database(self, name: str, owner: str | None = None) -> None:
        if not DB_NAME_RE.match(name):
            raise SystemExit(f"Refusing database name {name!r}: the bench only uses names starting maxportal_bench.")
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.psql(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))
        self.databases.append(name)

    def create_role(self, name: str, connection_limit: int) -> None:
        """The portal's own login role: not a superuser, so its connection limit holds and a leak of
        connections fails the bench instead of taking PostgreSQL's last slots from everyone else."""
        if not DB_NAME_RE.match(name):
            raise SystemExit(f"Refusing role name {name!r}: the bench only uses names starting maxportal_bench.")
        # A database left by a run that was killed outright (SIGKILL) is dropped first: the role owns it.
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.psql(f'DROP ROLE IF EXISTS "{name}"')
        self.psql(f'CREATE ROLE "{name}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT {connection_limit}')
        self.roles.append(name)

    def drop_database(self, name: str) -> None:
        if name in self.databases:
            self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.databases.remove(name)

    def start(self, label: str, argv: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)  # own group: we stop it, not the tty
        self.procs.append((label, proc))
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 10.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        # Workers left behind by a killed supervisor are in the same group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def cleanup(self) -> None:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave things behind
        try:
            for label, proc in reversed(self.procs):
                try:
                    self.stop(proc)
                except Exception as exc:  # keep cleaning up the rest
                    print(f"  could not stop {label} (pid {proc.pid}): {exc}", file=sys.stderr)
            self.procs.clear()
            for name in list(self.databases):
                if self.keep_databases and not name.endswith("_pgbench"):
                    print(f"  kept database {name} (--keep-db); drop it with: dropdb -h 127.0.0.1 -U postgres {name}")
                    continue
                try:
                    self.drop_database(name)
                except Exception as exc:
                    print(f"  could not drop database {name}: {exc}", file=sys.stderr)
            if not self.databases:
                for role in list(self.roles):
                    try:
                        self.psql(f'DROP ROLE IF EXISTS "{role}"')
                        self.roles.remove(role)
                    except Exception as exc:
                        print(f"  could not drop role {role}: {exc}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, previous)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted)) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def server_environment(args, db_name: str, secret_key: str, media_root: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MAXPORTAL_", "DATABASE_", "CELERY_"))}
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}" if args.redis_db >= 0 else ""
    env.update(
        DJANGO_SETTINGS_MODULE="maxportal.settings",
        DATABASE_URL=f"postgres://{db_name}@{args.pg_host}:{args.pg_port}/{db_name}",  # its own role
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secret_key,
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_LOG_LEVEL="WARNING",
        MAXPORTAL_API_RATE_LIMIT="1000000000",
        MAXPORTAL_API_RATE_WINDOW="60",
        MAXPORTAL_MEDIA_ROOT=media_root,
        PYTHONUNBUFFERED="1",
    )
    if args.db_connections == "persistent":
        env["DATABASE_CONN_MAX_AGE"] = "60"  # settings.py's default on PostgreSQL
    elif args.db_connections == "per-request":
        env["DATABASE_CONN_MAX_AGE"] = "0"
    else:
        env["DATABASE_CONN_MAX_AGE"] = "0"
        env["DATABASE_POOL_MAX_SIZE"] = str(args.pool_size)
    if redis_url:
        env["MAXPORTAL_CACHE_URL"] = redis_url
        env["CELERY_BROKER_URL"] = redis_url
    for item in args.server_env:
        name, _, value = item.partition("=")
        env[name] = value
    return env


# --- measuring ------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime ticks) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _tree_ticks(root: int) -> int:
    parents: dict[int, list[int]] = defaultdict(list)
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st:
                parents[st[0]].append(int(entry.name))
                ticks[int(entry.name)] = st[1]
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(parents.get(pid, ()))
    return total


def cpu_snapshot(server_pid: int | None) -> dict:
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]
    t = os.times()
    return {
        "wall": time.monotonic(),
        "busy": (sum(values[:8]) - idle) / CLK_TCK,
        "server": _tree_ticks(server_pid) / CLK_TCK if server_pid else 0.0,
        "client": t.user + t.system,
    }


def cpu_delta(a: dict, b: dict) -> dict:
    wall = max(b["wall"] - a["wall"], 1e-9)
    busy = (b["busy"] - a["busy"]) / wall
    server = (b["server"] - a["server"]) / wall
    client = (b["client"] - a["client"]) / wall
    return {"cores_busy": busy, "server": server, "client": client, "rest": max(0.0, busy - server - client)}


class PgStats:
    """Transactions and new sessions of the bench database, from pg_stat_database."""

    def __init__(self, args, db: str):
        import psycopg

        self.db = db
        self.conn = psycopg.connect(host=args.pg_host, port=args.pg_port, user=args.pg_user, dbname="postgres",
                                    autocommit=True, application_name="bench-api_load-stats")

    def snapshot(self) -> dict:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT xact_commit + xact_rollback, sessions FROM pg_stat_database WHERE datname = %s",
                        [self.db])
            xacts, sessions = cur.fetchone()
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.db])
            (backends,) = cur.fetchone()
        return {"wall": time.monotonic(), "xacts": xacts, "sessions": sessions, "backends": backends}

    @staticmethod
    def delta(a: dict, b: dict) -> dict:
        wall = max(b["wall"] - a["wall"], 1e-9)
        return {"xacts_per_s": (b["xacts"] - a["xacts"]) / wall, "new_sessions": b["sessions"] - a["sessions"],
                "new_sessions_per_s": (b["sessions"] - a["sessions"]) / wall, "backends_at_end": b["backends"]}

    def close(self):
        with contextlib.suppress(Exception):
            self.conn.close()


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class Stats:
    """Latencies (ms) and answers per endpoint for one phase."""

    def __init__(self):
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.codes: dict[str, Counter] = defaultdict(Counter)
        self.samples: dict[str, list[str]] = defaultdict(list)

    def add(self, name: str, ms: float, status, body: bytes = b"") -> None:
        self.codes[name][status] += 1
        ok = isinstance(status, int) and 200 <= status < 300
        if ok:
            self.lat[name].append(ms)
        elif len(self.samples[name]) < 3:
            text = re.sub(r"<[^>]+>", " ", body[:2000].decode(errors="replace"))  # an HTML 500 page: its words
            self.samples[name].append(f"{status}: {' '.join(text.split())[:200]}")

    def rows(self, seconds: float) -> list[dict]:
        out = []
        for name in sorted(self.codes, key=lambda n: ENDPOINT_ORDER.index(n) if n in ENDPOINT_ORDER else 99):
            lat = self.lat[name]
            total = sum(self.codes[name].values())
            errors = {str(k): v for k, v in self.codes[name].items() if not (isinstance(k, int) and 200 <= k < 300)}
            out.append({
                "endpoint": name, "count": total, "ok": len(lat), "per_s": len(lat) / seconds if seconds else 0.0,
                "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat) if lat else float("nan"),
                "mean_ms": statistics.fmean(lat) if lat else float("nan"), "errors": errors,
                "error_samples": self.samples.get(name, []),
            })
        return out


INBOX_GOT = "GET /signals?wait (returned signals)"
INBOX_EMPTY = "GET /signals?wait (came back empty)"
ENDPOINT_ORDER = [
    "POST /leads (ingest)", "POST /leads/{id}/handoff", "POST /leads/{id}/handoff (from due time)",
    "POST /leads/{id}/complete", INBOX_GOT, INBOX_EMPTY,
    "POST /signals/{id}/ack", "POST /signals (task)", "POST /agents/heartbeat", "GET /ping (no auth, no database)",
]


# --- the client --------------------------------------------------------------------------------------


class Client:
    def __init__(self, base: str, eidolons: dict, run_id: str, idempotency_keys: bool):
        self.base = base
        self.eidolons = eidolons  # slug -> {"name", "stage", "token"}
        self.owner_of = {info["stage"]: slug for slug, info in eidolons.items() if info["stage"]}
        self.run_id = run_id
        self.idempotency_keys = idempotency_keys
        self.session = None

    async def request(self, method: str, path: str, slug: str, *, body=None, params=None, write=False,
                      timeout: float = 30.0, session=None):
        """(status or exception name, raw body, parsed JSON or None, milliseconds)."""
        import aiohttp

        headers = {"Authorization": f"Bearer {self.eidolons[slug]['token']}"}
        if write and self.idempotency_keys:
            headers["Idempotency-Key"] = uuid.uuid4().hex  # what a real agent sends to retry safely
        started = time.perf_counter()
        try:
            async with (session or self.session).request(
                method, self.base + path, json=body, params=params, headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection refused, reset, timeout: counted, never fatal
            raw, status = str(exc).encode(), type(exc).__name__
        ms = (time.perf_counter() - started) * 1000
        data = None
        if raw and isinstance(status, int):
            with contextlib.suppress(ValueError):
                data = json.loads(raw)
        return status, raw, data, ms


def ok(status) -> bool:
    return isinstance(status, int) and 200 <= status < 300


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# --- phase: the 36 agents ------------------------------------------------------------------------------


async def phase_mixed(client: Client, agents: int, seconds: float, heartbeat_every: float, task_every: float) -> dict:
    stats = Stats()
    loop = asyncio.get_running_loop()
    slugs = list(client.eidolons)
    counter = iter(range(10**9))
    pipeline_slugs = [s for s in slugs if client.eidolons[s]["stage"]]
    started = loop.time()
    stop = started + seconds
    moved = Counter()

    async def agent(slug: str, kind: str):
        stage = client.eidolons[slug]["stage"]
        rng = random.Random(f"{slug}-{kind}")
        next_heartbeat = loop.time() + rng.uniform(0, heartbeat_every)
        next_task = loop.time() + rng.uniform(0, task_every)
        while loop.time() < stop:
            if stage == "LeadGen":
                n = next(counter)
                domain = f"mixed-{client.run_id}-{n}.bench.example"
                st, raw, _, ms = await client.request("POST", "/api/v1/leads", slug, write=True, body={
                    "company": f"Bench Co {n}", "email": f"buyer@{domain}", "contact_name": "Bench Buyer",
                    "source": "website", "summary": f"Inbound lead {n} from the bench",
                    "data": {"bench": True, "n": n},
                })
                stats.add("POST /leads (ingest)", ms, st, raw)
            if stage is None and loop.time() >= next_task:
                next_task += task_every
                to = rng.choice(pipeline_slugs)
                st, raw, _, ms = await client.request("POST", "/api/v1/signals", slug, write=True, body={
                    "type": "TASK_ASSIGNMENT", "to": to, "payload": {"task": "review", "by": slug, "bench": True},
                })
                stats.add("POST /signals (task)", ms, st, raw)
            remaining = stop - loop.time()
            if remaining <= 0:
                break
            # LILLy has just ingested: she looks without waiting; the others wait for work.
            wait = 0 if stage == "LeadGen" else round(min(2.0, remaining), 2)
            st, raw, signals, ms = await client.request(
                "GET", "/api/v1/signals", slug, params={"wait": str(wait), "limit": "10", "agent": kind},
                timeout=wait + 30,
            )
            empty = ok(st) and not signals
            stats.add(INBOX_EMPTY if empty else INBOX_GOT,
                      ms, st, raw)
            if not ok(st):
                await asyncio.sleep(0.2)
            for sig in (signals or []) if ok(st) else []:
                payload = sig.get("payload") or {}
                if sig["type"] == "PIPELINE_TRANSITION" and payload.get("next_stage") == stage and sig.get("lead_id"):
                    move = "complete" if stage == PIPELINE[-1] else "handoff"
                    body = {"summary": f"{stage} done by {slug}/{kind}", "agent": kind}
                    if move == "handoff":
                        body["data"] = {f"{stage}_by": kind}
                    st, raw, _, ms = await client.request(
                        "POST", f"/api/v1/leads/{sig['lead_id']}/{move}", slug, write=True, body=body)
                    stats.add(f"POST /leads/{{id}}/{move}", ms, st, raw)
                    if ok(st):
                        moved[move] += 1
                st, raw, _, ms = await client.request("POST", f"/api/v1/signals/{sig['id']}/ack", slug, write=True)
                stats.add("POST /signals/{id}/ack", ms, st, raw)
            if loop.time() >= next_heartbeat:
                next_heartbeat += heartbeat_every
                st, raw, _, ms = await client.request("POST", "/api/v1/agents/heartbeat", slug, write=True, body={
                    "kind": kind, "version": "bench-1.0", "state": "running"})
                stats.add("POST /agents/heartbeat", ms, st, raw)

    tasks = [asyncio.create_task(agent(slugs[i % len(slugs)], KINDS[(i // len(slugs)) % len(KINDS)]))
             for i in range(agents)]
    await asyncio.gather(*tasks)
    elapsed = loop.time() - started
    return {"seconds": elapsed, "stats": stats, "moved": dict(moved)}


# --- phases: handoff capacity (closed loop) and rate (open loop) -----------------------------------


class LeadPools:
    """Seeded leads per stage; a lead handed on joins the next stage's pool (until DeliveryPM)."""

    def __init__(self, pools: dict[str, list[str]]):
        self.pools = {stage: deque(ids) for stage, ids in pools.items()}

    def take(self) -> tuple[str, str] | None:
        stage = max(self.pools, key=lambda s: len(self.pools[s]))
        if not self.pools[stage]:
            return None
        return stage, self.pools[stage].popleft()

    def handed_on(self, stage: str, lead_id: str) -> None:
        following = PIPELINE[PIPELINE.index(stage) + 1]
        if following in self.pools:
            self.pools[following].append(lead_id)

    def size(self) -> int:
        return sum(len(q) for q in self.pools.values())


async def _handoff(client: Client, stats: Stats, pools: LeadPools, stage: str, lead_id: str, due: float | None):
    slug = client.owner_of[stage]
    loop = asyncio.get_running_loop()
    st, raw, data, ms = await client.request(
        "POST", f"/api/v1/leads/{lead_id}/handoff", slug, write=True,
        body={"summary": f"{stage} done", "data": {f"{stage}_done": True}, "agent": "claude"},
    )
    stats.add("POST /leads/{id}/handoff", ms, st, raw)
    if due is not None:
        stats.add("POST /leads/{id}/handoff (from due time)", (loop.time() - due) * 1000, st, raw)
    if ok(st):
        pools.handed_on(stage, lead_id)
    return st, data


async def phase_floor(client: Client, concurrency: int, seconds: float) -> dict:
    """GET /api/v1/ping (no auth, no database) as fast as answered: what any request costs the server."""
    stats = Stats()
    loop = asyncio.get_running_loop()
    started = loop.time()
    stop = started + seconds
    slug = next(iter(client.eidolons))

    async def worker():
        while loop.time() < stop:
            st, raw, _, ms = await client.request("GET", "/api/v1/ping", slug)
            stats.add("GET /ping (no auth, no database)", ms, st, raw)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"seconds": loop.time() - started, "stats": stats}


async def phase_capacity(client: Client, pools: LeadPools, concurrency: int, seconds: float) -> dict:
    stats = Stats()
    loop = asyncio.get_running_loop()
    started = loop.time()
    stop = started + seconds
    exhausted = False

    async def worker():
        nonlocal exhausted
        while loop.time() < stop:
            item = pools.take()
            if item is None:
                exhausted = True
                return
            await _handoff(client, stats, pools, *item, None)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"seconds": loop.time() - started, "stats": stats, "exhausted": exhausted}


async def phase_rate(client: Client, pools: LeadPools, rate: float, seconds: float, max_in_flight: int) -> dict:
    stats = Stats()
    loop = asyncio.get_running_loop()
    total = max(1, int(rate * seconds))
    start = loop.time() + 0.05
    in_flight: set[asyncio.Task] = set()
    skipped_busy = skipped_empty = 0
    done_at: list[float] = []

    async def one(stage, lead_id, due):
        st, _ = await _handoff(client, stats, pools, stage, lead_id, due)
        if ok(st):
            done_at.append(loop.time())

    i = 0
    while i < total:
        due_count = min(total, int((loop.time() - start) * rate) + 1)
        while i < due_count:
            due = start + i / rate
            i += 1
            if len(in_flight) >= max_in_flight:
                skipped_busy += 1  # the server is this far behind: the target is missed anyway
                continue
            item = pools.take()
            if item is None:
                skipped_empty += 1
                continue
            task = asyncio.create_task(one(*item, due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
    if in_flight:
        await asyncio.wait(in_flight, timeout=60)
    finished = max(done_at) if done_at else loop.time()
    elapsed = max(finished - start, 1e-9)
    return {"seconds": elapsed, "stats": stats, "offered": total, "offered_per_s": rate,
            "done": len(done_at), "done_per_s": len(done_at) / elapsed,
            "skipped_busy": skipped_busy, "skipped_empty": skipped_empty}


# --- phase: wake-up with 1,000 parked long-polls ---------------------------------------------------


async def phase_wakeup(client: Client, pools: dict[str, list[str]], waiters: int, samples: int, sample_rate: float,
                       settle: float, wait: float, idle_window: float, probe) -> dict:
    """``probe.snap()`` takes a snapshot (CPU, PostgreSQL counters); ``probe.diff(a, b)`` compares two."""
    import aiohttp

    stats = Stats()
    loop = asyncio.get_running_loop()
    slugs = list(client.eidolons)
    received: dict[int, tuple[float, float]] = {}  # signal id -> (wall time the poll returned, signal created)
    stop = asyncio.Event()
    in_poll = 0
    polls_started = 0
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    waiter_session = aiohttp.ClientSession(connector=connector)

    async def waiter(i: int):
        nonlocal in_poll, polls_started
        slug = slugs[i % len(slugs)]
        rng = random.Random(i)
        first = True
        while not stop.is_set():
            # Agents' polls are not in step: spread the first poll's length so they do not all expire at once.
            this_wait = round(rng.uniform(wait / 2, wait), 1) if first else wait
            first = False
            in_poll += 1
            polls_started += 1
            try:
                st, raw, data, ms = await client.request(
                    "GET", "/api/v1/signals", slug, params={"wait": str(this_wait), "limit": "1"},
                    timeout=this_wait + 30, session=waiter_session,
                )
            finally:
                in_poll -= 1
            returned = time.time()
            if not ok(st):
                stats.add(INBOX_GOT, ms, st, raw)
                await asyncio.sleep(0.5)
                continue
            stats.add(INBOX_GOT if data else INBOX_EMPTY, ms, st)
            for sig in data or ():
                received[sig["id"]] = (returned, parse_time(sig["created_at"]))
                st, raw, _, ms = await client.request("POST", f"/api/v1/signals/{sig['id']}/ack", slug, write=True,
                                                      session=waiter_session)
                stats.add("POST /signals/{id}/ack", ms, st, raw)

    tasks = []
    ramp_start, ramp_t0 = probe.snap(), loop.time()
    try:
        for i in range(waiters):
            tasks.append(asyncio.create_task(waiter(i)))
            if i % 50 == 49:
                await asyncio.sleep(0.02)  # a ramp, not a SYN flood
        deadline = loop.time() + 60
        while polls_started < waiters and loop.time() < deadline:
            await asyncio.sleep(0.05)
        # Parked: every poll has authenticated and looked at its inbox once (two transactions each, at
        # least); on a busy machine that takes seconds. Then let things settle.
        while loop.time() < deadline and (probe.snap()["pg"]["xacts"] - ramp_start["pg"]["xacts"]) < 2 * waiters:
            await asyncio.sleep(0.25)
        parked_after = loop.time() - ramp_t0
        await asyncio.sleep(settle)
        parked = in_poll
        idle0 = probe.snap()
        await asyncio.sleep(idle_window)
        parked_info = {"idle_seconds": idle_window, "parked_after_s": parked_after, **probe.diff(idle0, probe.snap())}
        sampling0 = probe.snap()

        # The sample: handoffs paced at sample_rate, round-robin over the six stages that hand off, so
        # each wakes the polls of the next stage's Eidolon.
        queues = {stage: deque(ids) for stage, ids in pools.items()}
        sent: dict[int, tuple[float, float]] = {}  # signal id -> (wall time of the handoff's response, ms)
        sample_stats = Stats()
        t0 = loop.time()
        for k in range(samples):
            await asyncio.sleep(max(0.0, t0 + k / sample_rate - loop.time()))
            stage = HANDOFF_STAGES[k % len(HANDOFF_STAGES)]
            if not queues[stage]:
                break
            lead_id = queues[stage].popleft()
            st, raw, data, ms = await client.request(
                "POST", f"/api/v1/leads/{lead_id}/handoff", client.owner_of[stage], write=True,
                body={"summary": "wake-up sample", "agent": "claude"},
            )
            answered = time.time()
            sample_stats.add("POST /leads/{id}/handoff", ms, st, raw)
            if ok(st) and data and data.get("transition", {}).get("signal_id"):
                sent[data["transition"]["signal_id"]] = (answered, ms)
        deadline = loop.time() + 10
        while loop.time() < deadline and not all(sid in received for sid in sent):
            await asyncio.sleep(0.05)
        sampling = probe.diff(sampling0, probe.snap())
        sampling["xacts_per_sample"] = (sampling["pg"]["xacts_per_s"] * (loop.time() - t0)) / max(1, len(sent))
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await waiter_session.close()

    from_response = [(received[sid][0] - t) * 1000 for sid, (t, _) in sent.items() if sid in received]
    from_created = [(received[sid][0] - received[sid][1]) * 1000 for sid in sent if sid in received]
    return {
        "waiters": waiters, "parked_when_sampling": parked, "parked_info": parked_info, "sampling": sampling,
        "samples": len(sent), "delivered": len(from_response), "lost": len(sent) - len(from_response),
        "wake_ms_from_response": from_response, "wake_ms_from_created": from_created,
        "stats": stats, "sample_stats": sample_stats, "seconds": loop.time() - t0,
    }


# --- pgbench -----------------------------------------------------------------------------------------


def run_pgbench(res: Resources, args) -> dict:
    db = f"{args.db_name}_pgbench"
    res.create_database(db)
    base = ["-h", args.pg_host, "-p", str(args.pg_port), "-U", args.pg_user]
    init = res.start("pgbench -i", ["pgbench", *base, "-i", "-q", "-s", str(args.pgbench_scale), db],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = init.communicate(timeout=600)
    if init.returncode != 0:
        raise RuntimeError(f"pgbench -i failed: {out[-500:]}")
    argv = ["pgbench", *base, "-c", str(args.pgbench_clients), "-j", str(args.pgbench_threads),
            "-T", str(args.pgbench_seconds), db]
    bench = res.start("pgbench", argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = bench.communicate(timeout=args.pgbench_seconds + 120)
    if bench.returncode != 0:
        raise RuntimeError(f"pgbench failed: {out[-500:]}")
    res.drop_database(db)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    if not tps:
        raise RuntimeError(f"could not read tps from pgbench's output: {out[-500:]}")
    return {"tps": float(tps.group(1)), "latency_avg_ms": float(latency.group(1)) if latency else None,
            "command": " ".join(argv[:1] + argv[len(base) + 1:]), "scale": args.pgbench_scale}


# --- the run -------------------------------------------------------------------------------------------


def fmt_ms(v: float) -> str:
    return "-" if v != v else (f"{v:.1f}" if v < 100 else f"{v:.0f}")


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"  {'endpoint':<42}{'count':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  errors")
    for r in rows:
        errors = ", ".join(f"{k}x{v}" for k, v in r["errors"].items()) or "-"
        print(f"  {r['endpoint']:<42}{r['count']:>8}{r['per_s']:>9.1f}{fmt_ms(r['p50_ms']):>9}"
              f"{fmt_ms(r['p99_ms']):>9}{fmt_ms(r['max_ms']):>9}  {errors}")
        for sample in r["error_samples"]:
            print(f"      e.g. {sample}")


def print_resources(cpu: dict, pg: dict, requests_per_s: float | None = None) -> None:
    print(f"  CPU (cores of {os.cpu_count()}): machine {cpu['cores_busy']:.2f} busy = portal {cpu['server']:.2f}"
          f" + this client {cpu['client']:.2f} + rest {cpu['rest']:.2f} (PostgreSQL, Redis, other processes)")
    print(f"  PostgreSQL: {pg['xacts_per_s']:.0f} transactions/s, {pg['new_sessions']} new sessions"
          f" ({pg['new_sessions_per_s']:.1f}/s), {pg['backends_at_end']} backends on the bench database at the end")
    if requests_per_s:
        # Per request, these hardly depend on how busy the machine is: what a request costs, not how long it waited.
        print(f"  per request: {cpu['server'] / requests_per_s * 1000:.1f} ms of portal CPU,"
              f" {pg['xacts_per_s'] / requests_per_s:.1f} PostgreSQL transactions")


def requests_per_s(out: dict) -> float:
    rows = [r for r in out["stats"].rows(out["seconds"]) if "(from due time)" not in r["endpoint"]]  # same requests
    return sum(r["count"] for r in rows) / out["seconds"]


async def wait_healthy(base: str, proc: subprocess.Popen, timeout: float) -> dict:
    import aiohttp

    deadline = time.monotonic() + timeout
    last = "no answer"
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode} before /healthz answered")
            try:
                async with session.get(base + "/healthz", timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    body = await resp.json(content_type=None)
                    if resp.status == 200:
                        return body
                    last = f"{resp.status} {body}"
            except Exception as exc:
                last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.2)
    raise RuntimeError(f"/healthz did not answer 200 within {timeout:.0f} s: {last}")


async def drive(args, base: str, setup: dict, server: subprocess.Popen, pgstats: PgStats, res: Resources,
                results: dict) -> None:
    import aiohttp

    health = await wait_healthy(base, server, timeout=60)
    print(f"  /healthz: {health}")
    client = Client(base, setup["eidolons"], run_id=uuid.uuid4().hex[:8], idempotency_keys=not args.no_idempotency_keys)
    pools = LeadPools(setup["pools"]["handoff"])
    phases = results["phases"]

    async def measured(name: str, coro):
        cpu0, pg0 = cpu_snapshot(server.pid), pgstats.snapshot()
        out = await coro
        cpu, pg = cpu_delta(cpu0, cpu_snapshot(server.pid)), PgStats.delta(pg0, pgstats.snapshot())
        out["cpu"], out["pg"] = cpu, pg
        phases[name] = out
        return out

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        client.session = session
        # Warm-up: every worker imports, connects and fills its caches before anything is timed.
        await phase_mixed(client, args.agents, min(3.0, args.duration), args.heartbeat_every, args.task_every)

        if "mixed" in args.phases:
            out = await measured("mixed", phase_mixed(client, args.agents, args.duration, args.heartbeat_every,
                                                      args.task_every))
            rows = out["stats"].rows(out["seconds"])
            total = sum(r["ok"] for r in rows)
            print_table(f"Phase mixed: {args.agents} agents on {len(client.eidolons)} Eidolons for"
                        f" {out['seconds']:.1f} s ({total / out['seconds']:.0f} requests/s in all;"
                        f" leads moved: {out['moved']})", rows)
            print_resources(out["cpu"], out["pg"], requests_per_s(out))

        if "floor" in args.phases:
            out = await measured("floor", phase_floor(client, args.agents, args.floor_seconds))
            print_table(f"Phase floor: {args.agents} clients on GET /api/v1/ping for {out['seconds']:.1f} s",
                        out["stats"].rows(out["seconds"]))
            print_resources(out["cpu"], out["pg"], requests_per_s(out))

        if "capacity" in args.phases:
            out = await measured("capacity", phase_capacity(client, pools, args.agents, args.handoff_seconds))
            rows = out["stats"].rows(out["seconds"])
            print_table(f"Phase capacity: {args.agents} clients handing off as fast as answered, {out['seconds']:.1f} s"
                        + (" (seeded leads ran out)" if out["exhausted"] else ""), rows)
            print_resources(out["cpu"], out["pg"], requests_per_s(out))

        if "rate" in args.phases:
            rate = args.handoff_rate or results["pgbench"]["tps"] / 10
            out = await measured("rate", phase_rate(client, pools, rate, args.handoff_seconds, args.max_in_flight))
            rows = out["stats"].rows(out["seconds"])
            print_table(f"Phase rate: handoffs offered at {rate:.0f}/s (open loop) for {args.handoff_seconds:.0f} s:"
                        f" {out['done']} done, {out['done_per_s']:.0f}/s"
                        + (f", {out['skipped_busy']} not sent (over {args.max_in_flight} in flight)"
                           if out["skipped_busy"] else "")
                        + (f", {out['skipped_empty']} not sent (seeded leads ran out)" if out["skipped_empty"] else ""),
                        rows)
            print_resources(out["cpu"], out["pg"], requests_per_s(out))

    if "wakeup" in args.phases:
        # The earlier phases leave signals nobody acknowledged (the capacity phases do not read inboxes):
        # clear them so the parked polls start on empty inboxes.
        res.psql("UPDATE eidolons_signal SET acknowledged_at = now() WHERE acknowledged_at IS NULL", db=args.db_name)

        class Probe:
            @staticmethod
            def snap():
                return {"cpu": cpu_snapshot(server.pid), "pg": pgstats.snapshot()}

            @staticmethod
            def diff(a, b):
                return {"cpu": cpu_delta(a["cpu"], b["cpu"]), "pg": PgStats.delta(a["pg"], b["pg"])}

        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            client.session = session
            out = await measured("wakeup", phase_wakeup(
                client, setup["pools"]["wake"], args.waiters, args.wake_samples, args.wake_rate,
                settle=args.settle, wait=args.wait, idle_window=args.idle_window, probe=Probe))
        w1, w2 = out["wake_ms_from_response"], out["wake_ms_from_created"]
        print(f"\nPhase wakeup: {args.waiters} long-polls waiting ({out['parked_when_sampling']} in flight when"
              f" sampling began), {out['samples']} handoffs at {args.wake_rate:.0f}/s, {out['delivered']} delivered,"
              f" {out['lost']} not delivered within 10 s")
        idle = out["parked_info"]
        print(f"  all polls parked {idle['parked_after_s']:.1f} s after the first was sent; then, while parked"
              f" and idle for {idle['idle_seconds']:.0f} s:")
        print_resources(idle["cpu"], idle["pg"])
        sampling = out["sampling"]
        print(f"  while sampling: {sampling['xacts_per_sample']:.0f} PostgreSQL transactions per sampled handoff"
              " (the handoff, the claims its signal wakes, the ack, and the parked polls' own re-polls)")
        print_resources(sampling["cpu"], sampling["pg"])
        print(f"  wake-up, handoff response -> long-poll returns: p50 {fmt_ms(pct(w1, 50))} ms,"
              f" p99 {fmt_ms(pct(w1, 99))} ms, max {fmt_ms(max(w1) if w1 else float('nan'))} ms")
        print(f"  wake-up, signal row written (before commit) -> long-poll returns: p50 {fmt_ms(pct(w2, 50))} ms,"
              f" p99 {fmt_ms(pct(w2, 99))} ms")
        print_table("  requests during the wake-up phase", out["stats"].rows(out["seconds"])
                    + out["sample_stats"].rows(out["seconds"]))
        print_resources(out["cpu"], out["pg"])


def verdicts(results: dict) -> list[tuple[bool, str]]:
    lines = []
    tps = results.get("pgbench", {}).get("tps")
    phases = results["phases"]
    if "rate" in phases:
        out = phases["rate"]
        target = tps / 10 if tps else out["offered_per_s"]
        rows = {r["endpoint"]: r for r in out["stats"].rows(out["seconds"])}
        due = rows.get("POST /leads/{id}/handoff (from due time)", {})
        p99 = due.get("p99_ms", float("nan"))
        errors = sum(rows.get("POST /leads/{id}/handoff", {}).get("errors", {}).values())
        passed = (out["done_per_s"] >= 0.98 * target and p99 < HANDOFF_P99_TARGET_MS and not errors
                  and not out["skipped_busy"] and not out["skipped_empty"])
        basis = f"pgbench {tps:.0f} tps / 10" if tps else "as offered; without pgbench this is not the target"
        lines.append((passed if tps else None,
                      f"handoffs >= {target:.0f}/s ({basis}) with p99 < {HANDOFF_P99_TARGET_MS:.0f} ms:"
                      f" {out['done_per_s']:.0f}/s done, p99 {fmt_ms(p99)} ms from the due time, {errors} errors"))
    if "capacity" in phases:
        out = phases["capacity"]
        rows = {r["endpoint"]: r for r in out["stats"].rows(out["seconds"])}
        r = rows.get("POST /leads/{id}/handoff", {})
        lines.append((None, f"(capacity, closed loop with {results['args']['agents']} clients: "
                            f"{r.get('per_s', 0):.0f} handoffs/s, p50 {fmt_ms(r.get('p50_ms', float('nan')))} ms, "
                            f"p99 {fmt_ms(r.get('p99_ms', float('nan')))} ms)"))
    if "wakeup" in phases:
        out = phases["wakeup"]
        p99 = pct(out["wake_ms_from_response"], 99)
        passed = (out["delivered"] > 0 and out["lost"] == 0 and p99 < WAKE_TARGET_MS
                  and out["waiters"] >= 1000)
        lines.append((passed, f"wake-up p99 < {WAKE_TARGET_MS:.0f} ms with {out['waiters']} waiting:"
                              f" p99 {fmt_ms(p99)} ms over {out['delivered']} of {out['samples']} samples"
                              + ("" if out["waiters"] >= 1000 else " (fewer than 1,000 waiting: not the target)")))
    return lines


def jsonable(results: dict) -> dict:
    def conv(value):
        if isinstance(value, Stats):
            return None
        if isinstance(value, dict):
            return {k: conv(v) for k, v in value.items() if not isinstance(v, Stats)}
        if isinstance(value, list):
            return [conv(v) for v in value]
        if isinstance(value, float) and value != value:
            return None
        return value

    out = conv(results)
    for name, phase in results["phases"].items():
        out["phases"][name]["endpoints"] = conv(phase["stats"].rows(phase["seconds"]))
        if "sample_stats" in phase:
            out["phases"][name]["endpoints"] += conv(phase["sample_stats"].rows(phase["seconds"]))
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a smoke run: short phases, 100 waiters, few samples")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of the mixed 36-agent phase")
    p.add_argument("--handoff-seconds", type=float, default=10.0, help="seconds of each handoff phase")
    p.add_argument("--handoff-rate", type=float, default=0.0,
                   help="handoffs/s offered in the rate phase (0: pgbench tps / 10)")
    p.add_argument("--agents", type=int, default=36, help="simulated agents (spread over the 9 Eidolons, 4 kinds)")
    p.add_argument("--waiters", type=int, default=1000, help="long-polls parked during the wake-up phase")
    p.add_argument("--wake-samples", type=int, default=200, help="handoffs whose wake-up is timed")
    p.add_argument("--wake-rate", type=float, default=10.0, help="wake-up samples per second")
    p.add_argument("--wait", type=float, default=30.0, help="wait= of the parked long-polls (the API's maximum is 30)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds between parking the polls and sampling")
    p.add_argument("--idle-window", type=float, default=3.0, help="seconds of CPU measured while the polls are parked")
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    p.add_argument("--app", default="maxportal.asgi:application",
                   help="the ASGI application uvicorn serves (another one only for experiments)")
    p.add_argument("--uvicorn-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for uvicorn (repeatable; experiments), e.g. --uvicorn-arg=--interface=wsgi")
    p.add_argument("--phases", default="mixed,floor,capacity,rate,wakeup", help="comma-separated subset to run")
    p.add_argument("--floor-seconds", type=float, default=5.0, help="seconds of the ping phase")
    p.add_argument("--heartbeat-every", type=float, default=2.0, help="seconds between an agent's heartbeats")
    p.add_argument("--task-every", type=float, default=1.0, help="seconds between a core Eidolon agent's task signals")
    p.add_argument("--max-in-flight", type=int, default=400, help="open loop: requests in flight before skipping")
    p.add_argument("--seed-per-stage", type=int, default=1500, help="seeded leads per stage for the handoff phases")
    p.add_argument("--no-idempotency-keys", action="store_true", help="send writes without an Idempotency-Key")
    p.add_argument("--db-connections", choices=("persistent", "per-request", "pool"), default="pool",
                   help="persistent: CONN_MAX_AGE=60 (settings' default); per-request: CONN_MAX_AGE=0; "
                        "pool: psycopg's pool (DATABASE_POOL_MAX_SIZE, needs psycopg-pool)")
    p.add_argument("--pool-size", type=int, default=8, help="pool: connections per worker process")
    p.add_argument("--db-connection-limit", type=int, default=60,
                   help="connection limit of the portal's own role (PostgreSQL's max_connections is shared)")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the server (repeatable), e.g. MAXPORTAL_SIGNAL_POLL_INTERVAL=5")
    p.add_argument("--pgbench-scale", type=int, default=10)
    p.add_argument("--pgbench-clients", type=int, default=8)
    p.add_argument("--pgbench-threads", type=int, default=2)
    p.add_argument("--pgbench-seconds", type=int, default=15)
    p.add_argument("--no-pgbench", action="store_true", help="skip pgbench (then give --handoff-rate)")
    p.add_argument("--db-name", default="maxportal_bench", help="the bench's own database (dropped at the end)")
    p.add_argument("--keep-db", action="store_true", help="leave the bench database for inspection")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--redis-db", type=int, default=13, help="Redis db for the cache and broker; -1: no Redis")
    p.add_argument("--json", help="write every figure to this file")
    p.add_argument("--_setup", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.handoff_seconds, args.waiters, args.floor_seconds = 5.0, 4.0, 100, 2.0
        args.wake_samples, args.wake_rate, args.settle, args.idle_window = 30, 15.0, 1.0, 1.0
        args.seed_per_stage, args.pgbench_seconds = 400, 5
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    unknown = set(args.phases) - {"mixed", "floor", "capacity", "rate", "wakeup"}
    if unknown:
        p.error(f"unknown phases {sorted(unknown)}: use mixed, floor, capacity, rate, wakeup")
    if args.no_pgbench and "rate" in args.phases and not args.handoff_rate:
        p.error("--no-pgbench needs --handoff-rate for the rate phase")
    if not (0 < args.wait <= 30):
        p.error("--wait must be in (0, 30]")
    if not DB_NAME_RE.match(args.db_name):
        p.error("--db-name must start with maxportal_bench and use only a-z, 0-9 and _")
    for host in (args.pg_host,):
        if host not in ("127.0.0.1", "::1", "localhost"):
            p.error("the bench runs on loopback only: --pg-host must be 127.0.0.1, ::1 or localhost")
    return args


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._setup:
        print(json.dumps(django_setup(json.loads(args._setup))))
        return 0

    raise_fd_limit(args.waiters * 2 + 1024)
    # Ctrl-C and SIGTERM stop the run and clean up, even when started from a shell that ignores SIGINT
    # for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    res = Resources({"host": args.pg_host, "port": args.pg_port, "user": args.pg_user})
    res.keep_databases = args.keep_db
    results: dict = {"args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "phases": {}}
    pgstats = None
    started = time.monotonic()
    load_before = os.getloadavg()
    results["load_before"] = load_before
    results["started_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"maxportal API load bench, {results['started_at']}, {os.cpu_count()} cores,"
          f" load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    tmp = tempfile.TemporaryDirectory(prefix="maxportal-bench-")
    # db_name matched DB_NAME_RE in parse_args: safe to put in the query.
    db = args.db_name
    busy_sql = f"SELECT count(*) FROM pg_stat_activity WHERE datname IN ('{db}', '{db}_pgbench') OR usename = '{db}'"  # noqa: S608
    busy = res.psql(busy_sql)
    if busy != "0":
        print(f"Another bench seems to be running ({busy} connections to {args.db_name}*): wait for it, or give"
              " this one another --db-name (maxportal_bench_<something>).", file=sys.stderr)
        return 2
    try:
        if not args.no_pgbench:
            print(f"  pgbench TPC-B: scale {args.pgbench_scale}, {args.pgbench_clients} clients,"
                  f" {args.pgbench_threads} threads, {args.pgbench_seconds} s ...")
            results["pgbench"] = run_pgbench(res, args)
            print(f"  PostgreSQL ceiling (pgbench TPC-B): {results['pgbench']['tps']:.0f} tps"
                  f" (latency average {results['pgbench']['latency_avg_ms']} ms)")

        res.create_role(args.db_name, args.db_connection_limit)
        res.create_database(args.db_name, owner=args.db_name)
        env = server_environment(args, args.db_name, secrets.token_urlsafe(50), str(Path(tmp.name) / "media"))
        spec = {"pools": {"handoff": args.seed_per_stage,
                          "wake": math.ceil(args.wake_samples / len(HANDOFF_STAGES)) + 2}}
        t = time.monotonic()
        setup_proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_setup", json.dumps(spec)],
                                    cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
        if setup_proc.returncode != 0:
            raise RuntimeError(f"setup failed:\n{setup_proc.stderr[-3000:]}")
        setup = json.loads(setup_proc.stdout.strip().splitlines()[-1])
        print(f"  database {args.db_name}: migrated, MAX plan loaded, {len(setup['eidolons'])} tokens issued,"
              f" {sum(len(v) for pool in setup['pools'].values() for v in pool.values())} leads seeded"
              f" ({time.monotonic() - t:.1f} s)")

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log_path = Path(tmp.name) / "server.log"
        argv = [sys.executable, "-m", "uvicorn", args.app, "--host", "127.0.0.1",
                "--port", str(port), "--workers", str(args.workers), "--lifespan", "off", "--no-access-log",
                "--log-level", "warning", "--timeout-keep-alive", "60", "--backlog", "4096", *args.uvicorn_arg]
        shown = {k: ("<generated>" if k == "DJANGO_SECRET_KEY" else v) for k, v in env.items()
                 if k.startswith(("DJANGO_", "MAXPORTAL_", "DATABASE_", "CELERY_"))}
        results["server"] = {"argv": argv[1:], "workers": args.workers, "environment": shown}
        print(f"  server: uvicorn {args.app} on {base}, {args.workers} workers, DJANGO_DEBUG=0,"
              f" database connections {args.db_connections}, cache {env.get('MAXPORTAL_CACHE_URL', 'locmem')}")
        with open(log_path, "wb") as log:
            server = res.start("uvicorn", argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        pgstats = PgStats(args, args.db_name)
        try:
            asyncio.run(drive(args, base, setup, server, pgstats, res, results))
        except BaseException:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            if tail.strip():
                print(f"\n--- server log (tail) ---\n{tail}", file=sys.stderr)
            raise
        if server.poll() is not None:
            raise RuntimeError(f"the server exited during the run (status {server.returncode}): no valid figures")
        server_log = log_path.read_text(errors="replace")
        errors = [line for line in server_log.splitlines() if "Traceback" in line or " ERROR " in line]
        if errors:
            print(f"\n  the server logged {len(errors)} errors; the first lines of its log:")
            print("    " + "\n    ".join(server_log.splitlines()[:30]))

        load_after = os.getloadavg()
        results["load_after"] = load_after
        print(f"\nTargets (load average at the end {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f};"
              " other processes on this machine take CPU from the portal and PostgreSQL):")
        lines = verdicts(results)
        results["verdicts"] = [{"pass": p, "text": text} for p, text in lines]
        for passed, text in lines:
            print(f"  {'PASS' if passed else 'MISS' if passed is False else '    '}  {text}")
        if args.json:
            Path(args.json).write_text(json.dumps(jsonable(results), indent=2, default=str))
            print(f"  figures written to {args.json}")
        failed_requests = sum(
            sum(r["errors"].values())
            for phase in results["phases"].values()
            for stats in (phase["stats"], phase.get("sample_stats"))
            if stats is not None
            for r in stats.rows(phase["seconds"])
        )
        if failed_requests:
            print(f"  {failed_requests} requests failed (see the errors columns): the run fails")
            return 1
        if args.quick:
            # A smoke run checks that everything runs end to end without errors; its figures are too
            # short to judge the targets by.
            return 0
        return 0 if all(p is not False for p, _ in lines) else 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the server and dropping the bench databases", file=sys.stderr)
        return 130
    finally:
        if pgstats is not None:
            pgstats.close()
        res.cleanup()
        tmp.cleanup()
        print(f"  done in {time.monotonic() - started:.0f} s; server stopped, databases "
              + ("kept" if args.keep_db else "dropped"))


if __name__ == "__main__":
    sys.exit(main())
