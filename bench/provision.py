#!/usr/bin/env python3
"""Provision the seven MAX containers against the local Proxmox, all at once, and time it.

    .venv/bin/python bench/provision.py                  # realistic durations (about a minute)
    .venv/bin/python bench/provision.py --time-scale 0.3  # the same, shorter

What it does, everything in this process and on loopback, in a scratch directory removed at exit:

1. a fresh SQLite database (WAL) or ``--database-url`` (PostgreSQL: give a database you can lose;
   the bench migrates and flushes it), the MAX plan loaded, the manual steps (M365 account, auth
   complete) ticked for CT201-CT207 as a person would;
2. the local Proxmox (fakepve as the AX42) with its task durations (create 5 s, start 2 s ... in
   Proxmox seconds) and the simulated executor's step durations (base config 12 s, CLIs 8 s ...),
   both multiplied by ``--time-scale``;
3. a real Celery worker (threads pool, ``--concurrency``, in-memory broker or ``--broker``);
4. run A: CT201 alone (``provision 201``): its makespan is one container's critical path, measured
   with the same engine, polling and worker;
5. run B: a fresh Proxmox and checklist, then all seven at once (``provision --all``);
6. prints both makespans, their ratio (target: at most 1.2), the sum of the seven containers' own
   critical paths (what a serial loop would cost) and the critical path of each container in run B
   (from its attempts' start and end times, along the prerequisites).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="Real seconds per Proxmox / simulated second (1.0: the durations make run shows).")
    parser.add_argument("--concurrency", type=int, default=32, help="Worker threads (default 32).")
    parser.add_argument("--poll", type=float, default=0.25,
                        help="Seconds between two looks at a running Proxmox task (MAXPORTAL_STEP_POLL_SECONDS).")
    parser.add_argument("--database-url", default="", help="Default: a scratch SQLite file.")
    parser.add_argument("--broker", default="memory://", help="Celery broker for the worker (default in-memory).")
    parser.add_argument("--timeout", type=float, default=600.0, help="Give up after this many seconds per run.")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="maxportal-bench-provision-"))
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{scratch / 'bench.sqlite3'}"
    os.environ["CELERY_BROKER_URL"] = args.broker
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maxportal.settings")
    os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
    try:
        return run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(args, scratch: Path) -> int:
    import logging

    import django

    django.setup()
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    from django.conf import settings

    settings.MAXPORTAL_PVE_SECRETS_DIR = scratch / "pve"
    settings.MAXPORTAL_SIMULATED_TIME_SCALE = args.time_scale
    settings.MAXPORTAL_STEP_POLL_SECONDS = args.poll

    from celery import Celery
    from celery.contrib.testing.worker import start_worker
    from django.core.management import call_command
    from django.db import connection

    import provisioning.tasks  # noqa: F401  (registers the tasks with the worker's app)

    call_command("migrate", verbosity=0)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")

    app = Celery("maxportal-bench", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(
        broker_url=args.broker,
        broker_transport_options={"polling_interval": 0.02} if args.broker.startswith("memory") else {},
        task_default_queue="bench-provision",
    )
    with start_worker(app, pool="threads", concurrency=args.concurrency, perform_ping_check=False,
                      loglevel="WARNING", shutdown_timeout=30):
        alone = one_run(args, scratch, vmids=[201], label="A: CT201 alone")
        together = one_run(args, scratch, vmids=list(range(201, 208)), label="B: CT201-CT207 at once")
    report(args, alone, together)
    ok = alone["ok"] and together["ok"]
    return 0 if ok and together["makespan"] <= 1.2 * alone["makespan"] else 1


def one_run(args, scratch: Path, *, vmids: list[int], label: str) -> dict:
    from django.core.management import call_command

    from eidolons.models import Signal
    from provisioning.devtools.local_pve import configure_local_host, start_local_proxmox
    from provisioning.models import ChecklistEvent, ChecklistStep, Container, ProxmoxHost, StepRun
    from provisioning.plan import max_plan_load
    from provisioning.selectors import provisioning_in_progress
    from provisioning.services import ENGINE, checklist_ensure_all, container_provision, step_tick

    call_command("flush", interactive=False, verbosity=0)
    for model in (StepRun, ChecklistEvent, ChecklistStep, Signal):
        model.objects.all().delete()
    max_plan_load()
    from django.conf import settings

    # A fresh node per run; the client reads the root password from the secrets folder.
    settings.MAXPORTAL_PVE_SECRETS_DIR = scratch / f"pve-{label[0]}"
    local = start_local_proxmox(directory=settings.MAXPORTAL_PVE_SECRETS_DIR, port=0, time_scale=args.time_scale)
    try:
        host = configure_local_host(ProxmoxHost.objects.get(name="ax42"), local)
        checklist_ensure_all()
        containers = list(Container.objects.filter(vmid__in=vmids).select_related("host"))
        for container in containers:
            step_tick(container=container, step="m365_account", actor=ENGINE)
            step_tick(container=container, step="auth_complete", actor=ENGINE)
        print(f"run {label}: provisioning {len(containers)} container(s) on {host.name} ...", flush=True)
        started = time.monotonic()
        for container in containers:
            container_provision(container=container, actor=ENGINE)
        while provisioning_in_progress(containers=containers):
            if time.monotonic() - started > args.timeout:
                print(f"  gave up after {args.timeout:g} s", flush=True)
                break
            time.sleep(0.05)
        makespan = time.monotonic() - started
        states = list(ChecklistStep.objects.filter(container__in=containers).values_list("state", flat=True))
        ok = set(states) == {"done"}
        paths = {c.vmid: critical_path(c) for c in containers}
        bad = list(ChecklistStep.objects.filter(container__in=containers).exclude(state="done")
                   .values_list("container__vmid", "step", "state", "note"))
        return {"label": label, "makespan": makespan, "ok": ok, "paths": paths, "bad": bad,
                "steps": len(states)}
    finally:
        local.stop()


def critical_path(container) -> float:
    """The longest chain of this container's attempts along the prerequisites, in seconds, from the
    start of its first attempt: what the container would take with unlimited workers."""
    from provisioning.checklist import STEPS
    from provisioning.models import StepRun

    runs = {r.step.step: r for r in StepRun.objects.filter(step__container=container, state="succeeded")
            .select_related("step")}
    if not runs:
        return 0.0
    origin = min(r.started_at for r in runs.values())
    finish: dict[str, float] = {}
    for spec in STEPS:
        step = spec.slug
        run = runs.get(step)
        before = max((finish.get(p, 0.0) for p in spec.prerequisites), default=0.0)
        if run is None:  # a manual step, ticked before the run
            finish[step] = before
            continue
        duration = (run.finished_at - run.started_at).total_seconds()
        finish[step] = before + duration
    return max(finish.values()) if finish else (max(r.finished_at for r in runs.values()) - origin).total_seconds()


def report(args, alone: dict, together: dict) -> None:
    path = alone["makespan"]
    makespan = together["makespan"]
    serial = sum(together["paths"].values())
    print()
    print(f"time scale {args.time_scale:g}, {args.concurrency} worker threads, poll every {args.poll:g} s")
    print(f"longest single container's critical path (CT201 alone): {path:7.2f} s")
    print(f"makespan, seven containers at once:                      {makespan:7.2f} s")
    print(f"ratio makespan / critical path:                          {makespan / path:7.2f}  (target <= 1.20)")
    print(f"sum of the seven containers' critical paths (serial):    {serial:7.2f} s")
    print("critical path of each container in the run at once: "
          + ", ".join(f"CT{vmid} {seconds:.1f} s" for vmid, seconds in sorted(together["paths"].items())))
    for run in (alone, together):
        if not run["ok"]:
            print(f"run {run['label']}: NOT all steps done:")
            for vmid, step, state, note in run["bad"]:
                print(f"  CT{vmid} {step}: {state} {note}")
    verdict = "PASS" if alone["ok"] and together["ok"] and makespan <= 1.2 * path else "MISS"
    print(f"{verdict}: makespan within 1.2x of the critical path")


if __name__ == "__main__":
    sys.exit(main())
