#!/usr/bin/env python3
"""SapWaves at scale: 1,000 waves over 100 seeded Eidolons, fired by beat and a worker as in production.

    .venv/bin/python bench/sapwaves.py --broker redis://127.0.0.1:6379/N            # about 6 minutes
    .venv/bin/python bench/sapwaves.py --broker redis://127.0.0.1:6379/N --quick    # about 4 minutes

Everything on loopback, bounded, and cleaned up on exit, on an error or on Ctrl-C (processes
stopped, the database dropped). Use a Redis database index of your own: the bench reads and writes
the default queue there.

1. creates a fresh PostgreSQL database (``--db``), migrates it, seeds 100 Eidolons and 1,000 waves
   (wave i wakes Eidolon i mod 100 every minute; catch-up "fire once"; overlap "skip"), through
   ``sapwave_save`` as the admin would, so each wave has its PeriodicTask. The cap is raised to
   1,000,000 for the run: what is measured is the firing machinery, not the cap's queue;
2. starts ``celery beat`` (DatabaseScheduler) and ``celery worker -P threads -c 8`` on the broker;
3. lets ``--slots`` minute slots fire while the bench answers every SAPWAVE as an agent would (a
   TASK_RESPONSE from the woken Eidolon: the sweep records the answer, so the next slot wakes it
   again); then stops beat across ``--down`` minute boundaries, starts it again and lets
   ``--after`` more slots fire;
4. prints fire lateness (slot -> the run's row, written in the transaction with its signals) p50,
   p99 and max over the slots beat was up for, slot -> signal for the signals, runs per (wave, slot)
   (max; the unique constraint makes a second impossible, the bench counts anyway), and, across the
   restart, slots with no row at all (lost) against slots accounted for (fired late, or recorded
   skipped: missed under "fire once").
"""

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _psql(pg: str, sql: str) -> None:
    subprocess.run(["psql", f"{pg}/postgres", "-qc", sql], check=True, capture_output=True)


def _wait_boundary(offset: float = 0.0) -> datetime:
    """Sleep until ``offset`` seconds after the next minute boundary; return that boundary."""
    now = datetime.now(UTC)
    boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    time.sleep(max(0.0, (boundary - now).total_seconds() + offset))
    return boundary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--broker", required=True, help="redis://127.0.0.1:6379/N (a database index of your own)")
    p.add_argument("--pg", default="postgres://postgres:postgres@127.0.0.1:5432", help="PostgreSQL server (loopback)")
    p.add_argument("--db", default="maxportal_bench_sapwaves")
    p.add_argument("--waves", type=int, default=1000)
    p.add_argument("--eidolons", type=int, default=100)
    p.add_argument("--slots", type=int, default=2, help="minute slots with beat up before the restart")
    p.add_argument("--down", type=int, default=2, help="minute boundaries beat is down for")
    p.add_argument("--after", type=int, default=1, help="minute slots after the restart")
    p.add_argument("--concurrency", type=int, default=8, help="worker threads")
    p.add_argument("--quick", action="store_true", help="1 slot, 1 boundary down, 1 after")
    args = p.parse_args()
    if args.quick:
        args.slots, args.down, args.after = 1, 1, 1
    for url in (args.broker, args.pg):
        if not any(h in url for h in ("127.0.0.1", "localhost", "[::1]")):
            sys.exit(f"{url}: the bench connects to loopback only")

    db_url = f"{args.pg}/{args.db}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "maxportal.settings", "DATABASE_URL": db_url,
           "CELERY_BROKER_URL": args.broker, "MAXPORTAL_SAPWAVE_CAP": "1000000", "DJANGO_LOG_LEVEL": "WARNING",
           "DATABASE_POOL_MAX_SIZE": str(args.concurrency + 2)}
    os.environ.update(env)
    logs = Path(tempfile.mkdtemp(prefix="bench-sapwaves-"))
    procs: dict[str, subprocess.Popen] = {}

    def start(name, *cmd):
        procs[name] = subprocess.Popen([sys.executable, "-m", "celery", "-A", "maxportal", *cmd], cwd=ROOT, env=env,
                                       stdout=(logs / f"{name}.log").open("a"), stderr=subprocess.STDOUT)

    def stop(name):
        proc = procs.pop(name, None)
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    _psql(args.pg, f'DROP DATABASE IF EXISTS "{args.db}"')
    _psql(args.pg, f'CREATE DATABASE "{args.db}"')
    try:
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from django.db.models import Count, Max

        from eidolons.models import Eidolon, SapWave, SapWaveRun, SapWaveTarget, Signal
        from eidolons.sapwaves import services
        from eidolons.services import signal_send
        from maxportal.kernel.actors import Actor

        call_command("migrate", verbosity=0)
        t0 = time.monotonic()
        eidolons = [Eidolon.objects.create(name=f"Bench{i:03d}", slug=f"bench{i:03d}", role="bench")
                    for i in range(args.eidolons)]
        actor = Actor.for_system("bench")
        for i in range(args.waves):
            services.sapwave_save(wave=SapWave(
                name=f"bench wave {i:04d}", kind="progress_check", prompt="bench", target_kind="eidolon",
                target_eidolon=eidolons[i % len(eidolons)], schedule_kind="crontab", cron_minute="*",
                catchup_policy="once", overlap_policy="skip"), actor=actor)
        print(f"seeded {args.eidolons} Eidolons and {args.waves} waves in {time.monotonic() - t0:.1f} s")
        start("worker", "worker", "-P", "threads", "-c", str(args.concurrency), "-l", "warning",
              "--without-gossip", "--without-mingle", "--without-heartbeat")
        start("beat", "beat", "-l", "warning", "--pidfile=", "-s", str(logs / "beat-schedule"))
        first = _wait_boundary()
        up_slots = [first + timedelta(minutes=k) for k in range(args.slots)]

        def answer_all():
            """Each woken Eidolon answers (TASK_RESPONSE) once, as its agent would."""
            woken = (SapWaveTarget.objects.filter(state="sent").values_list("eidolon__name", flat=True).distinct())
            hub = eidolons[0]
            for name in woken:
                signal_send(signal_type="TASK_RESPONSE", sender=name, recipient=hub, payload={"summary": "bench"})

        for slot in up_slots:
            time.sleep(25)
            answer_all()
            if slot != up_slots[-1]:
                _wait_boundary()
        time.sleep(10)
        stop("beat")
        stopped_at = datetime.now(UTC)
        down_until = None
        for _ in range(args.down):
            down_until = _wait_boundary(5)
        start("beat", "beat", "-l", "warning", "--pidfile=", "-s", str(logs / "beat-schedule"))
        restarted_at = datetime.now(UTC)
        time.sleep(25)
        answer_all()
        last = None
        for _ in range(args.after):
            last = _wait_boundary(25)
            answer_all()
        stop("beat")
        # Let the worker drain what beat sent (bounded): a slot still queued is not a lost one.
        drain_until, count = time.monotonic() + 180, -1
        while time.monotonic() < drain_until:
            time.sleep(10)
            now_count = SapWaveRun.objects.count()
            if now_count == count:
                break
            count = now_count
        stop("worker")

        runs = SapWaveRun.objects.all()
        on_time = [(r.created_at - r.slot).total_seconds()
                   for r in runs.filter(slot__in=[*up_slots, last], trigger="schedule")]
        signals = Signal.objects.filter(signal_type="SAPWAVE").values_list("created_at", "payload")
        signal_lateness = [(c - datetime.fromisoformat(pl["slot"])).total_seconds() for c, pl in signals
                           if datetime.fromisoformat(pl["slot"]) in {*up_slots, last}]
        per_slot = runs.values("wave", "slot").annotate(n=Count("id")).aggregate(m=Max("n"))["m"]
        duplicates = runs.values("wave", "slot").annotate(n=Count("id")).filter(n__gt=1).count()
        down_slots = [down_until - timedelta(minutes=k) for k in range(args.down)] if down_until else []
        down_slots = [s for s in down_slots if stopped_at < s < restarted_at]
        expected = {(w, s) for w in SapWave.objects.values_list("pk", flat=True) for s in down_slots}
        have = set(runs.filter(slot__in=down_slots).values_list("wave_id", "slot"))
        down_rows = runs.filter(slot__in=down_slots)
        print(f"\nlogs in {logs}")
        print(f"slots with beat up: {len(up_slots) + 1} x {args.waves} waves")
        print(f"fire lateness (slot -> run row), on-time runs: n={len(on_time)} p50={_pct(on_time, .5):.3f} s "
              f"p99={_pct(on_time, .99):.3f} s max={max(on_time, default=float('nan')):.3f} s  "
              f"(target p99 < 1 s: {'PASS' if on_time and _pct(on_time, .99) < 1 else 'MISS'})")
        print(f"slot -> SAPWAVE signal: n={len(signal_lateness)} p50={_pct(signal_lateness, .5):.3f} s "
              f"p99={_pct(signal_lateness, .99):.3f} s")
        print(f"runs per (wave, slot): max {per_slot}, duplicates {duplicates} "
              f"({'PASS' if per_slot == 1 and not duplicates else 'MISS'})")
        print(f"beat down {stopped_at:%H:%M:%S}-{restarted_at:%H:%M:%S} UTC over slots "
              f"{', '.join(f'{s:%H:%M}' for s in down_slots)}: {len(expected - have)} of {len(expected)} slots "
              "without a row after the drain "
              f"({'PASS' if not expected - have else 'MISS'}); accounted: "
              f"{down_rows.filter(state='fired').count()} fired late, "
              f"{down_rows.filter(state='skipped', skip_reason='missed').count()} skipped as missed (fire once)")
        late = [(r.created_at - r.slot).total_seconds() for r in down_rows.filter(state="fired")]
        if late:
            print(f"  the catch-up fired {(min(late)):.1f}-{max(late):.1f} s after those slots (beat's restart)")
        connection.close()
        return 0
    finally:
        for name in list(procs):
            stop(name)
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        _psql(args.pg, f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
