"""SapWaves on real processes: a ``celery beat`` (DatabaseScheduler) and a ``celery worker`` in their
own processes, on Redis and PostgreSQL (the test database, shared with them), and uvicorn for the
agents' long-poll. Each test uses its own queue; every wait is bounded.

- a wave -> beat -> worker -> SAPWAVE signal -> the long-poll returns it -> ack -> "acknowledged";
- two beats at once, and a double "run now": one run per slot;
- beat down for three hours: catch-up per policy when it starts again;
- the cap: nine targets, cap four, never more than four unanswered at once;
- a crontab edited while beat runs: the next fire follows the edit (waits for the next minute).
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from django.db import connection, connections
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from eidolons.models import Eidolon, SapWave, SapWaveRun, SapWaveTarget, Signal
from eidolons.sapwaves import selectors, services
from eidolons.services import api_token_issue, signal_send
from maxportal.kernel.actors import Actor
from provisioning.plan import max_plan_load

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = Actor.for_system("test operator")


def _broker() -> str:
    for name in ("MAXPORTAL_TEST_REDIS_URL", "CELERY_BROKER_URL"):
        url = os.environ.get(name, "")
        if url.startswith("redis://"):
            return url
    return ""


@pytest.fixture(autouse=True)
def _real_parts():
    if connection.vendor != "postgresql":
        pytest.skip("worker and beat share the test database: needs PostgreSQL")
    if not _broker():
        pytest.skip("needs Redis: set MAXPORTAL_TEST_REDIS_URL or CELERY_BROKER_URL to redis://127.0.0.1:6379/N")


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


class Processes:
    """Celery worker and beat processes of one test, on the test's own queue; stopped at the end."""

    def __init__(self, tmp_path: Path, *, sweep: bool = False, **extra_env: str):
        db = connection.settings_dict
        self.tmp = tmp_path
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.eidolons.sapwave_settings",
            "SAPWAVE_TEST_BROKER": _broker(),
            "SAPWAVE_TEST_QUEUE": f"test-sapwaves-{uuid.uuid4().hex[:8]}",
            "SAPWAVE_TEST_SWEEP": "1" if sweep else "",
            "DATABASE_URL": f"postgres://{db['USER']}{':' + db['PASSWORD'] if db.get('PASSWORD') else ''}"
                            f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "DATABASE_POOL_MAX_SIZE": "4",
            **extra_env,
        }
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def _start(self, name: str, *args: str) -> Path:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "maxportal", *args], cwd=ROOT, env=self.env,
                                stdout=log.open("w"), stderr=subprocess.STDOUT)
        self.procs.append((proc, log))
        return log

    def worker(self) -> Path:
        log = self._start("worker", "worker", "-P", "threads", "-c", "4", "-l", "info", "--without-gossip",
                          "--without-mingle", "--without-heartbeat")
        _wait_for(lambda: "ready." in log.read_text(), 40, "the worker to be ready")
        return log

    def beat(self, name: str = "beat") -> Path:
        log = self._start(name, "beat", "-l", "info", "--pidfile=", "-s", str(self.tmp / f"{name}-schedule"))
        _wait_for(lambda: "beat: Starting" in log.read_text(), 40, f"{name} to start")
        # DatabaseScheduler takes its first change marker on its first tick after the initial read:
        # an edit made in between is only seen at its 5-minute full reload (the sweep covers that
        # in production). Let beat tick (max interval 1 s here) before the test edits anything.
        time.sleep(2.5)
        return log

    def stop(self) -> None:
        for proc, _ in self.procs:
            proc.terminate()
        for proc, _log in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        connections.close_all()

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for _, log in self.procs)


@pytest.fixture
def procs(tmp_path):
    running = Processes(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def procs_with_sweep(tmp_path):
    running = Processes(tmp_path, sweep=True)
    yield running
    running.stop()


def _one_off(name: str, *, seconds: float, **fields) -> SapWave:
    target_set = fields.pop("_set", None)
    values = {"kind": "progress_check", "prompt": f"{name}?", "target_kind": "eidolon",
              "target_eidolon": Eidolon.objects.get(slug="lilly"), "schedule_kind": "clocked",
              "clocked_at": timezone.now() + timedelta(seconds=seconds)}
    values.update(fields)
    return services.sapwave_save(wave=SapWave(name=name, **values), actor=OPERATOR, target_set=target_set)


@pytest.fixture
def asgi(settings):
    """uvicorn serving maxportal.asgi on a free loopback port, in a thread of this process."""
    settings.MAXPORTAL_INBOX_THREAD_POOL = True
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config("maxportal.asgi:application", lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _wait_for(lambda: server.started, 10, "uvicorn")
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _http(method: str, url: str, token: str, timeout: float = 30):
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None,  # noqa: S310
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback test server)
        return response.status, json.loads(response.read())


def test_a_wave_fired_by_beat_reaches_the_long_poll_and_its_ack_is_recorded(procs, asgi):
    max_plan_load()
    token = api_token_issue(eidolon=Eidolon.objects.get(slug="lilly"))[1]
    procs.worker()
    procs.beat()
    wave = _one_off("flow", seconds=4)
    # LILLy's agent is already waiting on its inbox when beat fires the wave
    status, signals = _http("GET", f"{asgi}/api/v1/signals?wait=25", token)
    assert status == 200 and [s["type"] for s in signals] == ["SAPWAVE"], procs.logs()
    signal = signals[0]
    assert signal["payload"]["wave_id"] == wave.pk and signal["payload"]["prompt"] == "flow?"
    run = SapWaveRun.objects.get(wave=wave)
    assert (run.trigger, run.triggered_by, run.slot) == ("schedule", "beat", wave.clocked_at)
    lateness = (Signal.objects.get(pk=signal["id"]).created_at - run.slot).total_seconds()
    assert lateness < 3, f"fired {lateness:.2f} s after its slot"
    assert _http("POST", f"{asgi}/api/v1/signals/{signal['id']}/ack", token)[0] == 200
    target = SapWaveTarget.objects.select_related("signal").get(run=run)
    assert selectors.target_outcome(target) == "acknowledged"


def test_two_beats_and_a_double_run_now_make_one_run_per_slot(procs):
    max_plan_load()
    procs.worker()
    first, second = procs.beat("beat-a"), procs.beat("beat-b")
    wave = _one_off("twice", seconds=4)
    _wait_for(lambda: all(f"sapwave:{wave.pk}" in log.read_text() for log in (first, second)), 20,
              "both beats to send the wave's message")
    _wait_for(lambda: SapWaveRun.objects.filter(wave=wave).exists(), 10, "the run")
    time.sleep(2)  # the second beat's message is processed too
    assert SapWaveRun.objects.filter(wave=wave).count() == 1, procs.logs()
    assert Signal.objects.filter(signal_type="SAPWAVE", payload__wave_id=wave.pk).count() == 1
    # A double "run now" (two requests at once): one run for the minute's slot
    clicks = _one_off("clicks", seconds=3600)
    results = []

    def click():
        results.append(services.sapwave_run_now(wave=clicks, actor=OPERATOR)[1])
        connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(results) == [False, True]
    assert SapWaveRun.objects.filter(wave=clicks).count() == 1


def test_after_beat_was_down_three_hours_each_wave_catches_up_per_its_policy(procs):
    max_plan_load()
    now = timezone.now()
    minute = (now.minute + 30) % 60  # slots 30, 90 and 150 minutes ago: none of them on time
    down_since = now - timedelta(hours=3, minutes=10)
    waves = {}
    for policy in ("skip", "once", "all"):
        wave = services.sapwave_save(wave=SapWave(
            name=f"catch-up {policy}", kind="progress_check", prompt="?", target_kind="eidolon",
            target_eidolon=Eidolon.objects.get(slug="lilly"), schedule_kind="crontab", cron_minute=str(minute),
            catchup_policy=policy, catchup_window_minutes=100, overlap_policy="buffer_one"), actor=OPERATOR)
        # As if the wave had existed and beat had last run it before going down
        SapWave.objects.filter(pk=wave.pk).update(schedule_from=down_since)
        PeriodicTask.objects.filter(pk=wave.periodic_task_id).update(last_run_at=down_since)
        waves[policy] = wave
    procs.worker()
    procs.beat()
    _wait_for(lambda: SapWaveRun.objects.filter(wave__in=waves.values()).count() == 9, 30, "three runs per wave")
    got = {p: sorted(SapWaveRun.objects.filter(wave=w).values_list("state", flat=True)) for p, w in waves.items()}
    assert got == {"skip": ["skipped"] * 3, "once": ["fired", "skipped", "skipped"],
                   "all": ["fired", "fired", "skipped"]}, procs.logs()
    fired = SapWaveRun.objects.filter(wave=waves["once"], state="fired").get()
    assert (fired.trigger, now - fired.slot < timedelta(minutes=31)) == ("catchup", True), "the latest missed slot"


def test_nine_targets_under_the_cap_of_four_never_more_than_four_unanswered(procs_with_sweep, settings):
    max_plan_load()
    assert settings.MAXPORTAL_SAPWAVE_CAP == 4
    procs_with_sweep.worker()
    procs_with_sweep.beat()
    wave = _one_off("capped", seconds=3, target_kind="set", target_eidolon=None, _set=Eidolon.objects.all())
    targets = SapWaveTarget.objects.filter(wave=wave)
    _wait_for(lambda: targets.filter(state="sent").exists(), 20, "the first targets to be sent")
    deadline = time.monotonic() + 40
    answered_by_us = set()
    while time.monotonic() < deadline and targets.filter(state="answered").count() < 9:
        for target in targets.filter(state="sent").select_related("eidolon"):
            if target.pk not in answered_by_us:  # each woken Eidolon answers once, as an agent would
                signal_send(signal_type="TASK_RESPONSE", sender=target.eidolon.name,
                            recipient=Eidolon.objects.get(slug="mach42v2"), payload={"summary": "done"})
                answered_by_us.add(target.pk)
        time.sleep(0.3)
    rows = list(targets.values_list("sent_at", "closed_at"))
    assert len(rows) == 9 and all(closed for _, closed in rows), procs_with_sweep.logs()
    # The most targets held at once, from the recorded times (sent .. answered as recorded by the portal)
    events = sorted([(s, 1) for s, _ in rows] + [(c, -1) for _, c in rows], key=lambda e: (e[0], e[1]))
    held, most = 0, 0
    for _, step in events:
        held += step
        most = max(most, held)
    assert most == 4


def test_a_crontab_edited_while_beat_runs_fires_at_the_new_time(procs):
    max_plan_load()
    wave = services.sapwave_save(wave=SapWave(
        name="edited", kind="progress_check", prompt="?", target_kind="eidolon",
        target_eidolon=Eidolon.objects.get(slug="lilly"), schedule_kind="crontab", cron_minute="0", cron_hour="0",
        cron_day_of_month="1", cron_month_of_year="1"), actor=OPERATOR)
    procs.worker()
    procs.beat()
    now = datetime.now(UTC)
    target = (now + timedelta(seconds=8)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    wave.cron_minute, wave.cron_hour = str(target.minute), "*"
    wave.cron_day_of_month = wave.cron_month_of_year = "*"
    services.sapwave_save(wave=wave, actor=OPERATOR)  # the edit, beat still running
    wait = (target - datetime.now(UTC)).total_seconds() + 15
    run = _wait_for(lambda: SapWaveRun.objects.filter(wave=wave).first(), wait, f"the run at {target:%H:%M}")
    assert (run.slot, run.triggered_by) == (target, "beat"), procs.logs()


def test_the_yaml_mirror_is_written_by_a_worker_after_commit_and_retried_until_the_folder_works(
    tmp_path, settings, monkeypatch
):
    from celery import Celery

    from maxportal.celery import app

    max_plan_load()
    root = tmp_path / "signals"
    root.mkdir()
    settings.MAXPORTAL_SIGNAL_MIRROR_ROOT = str(root)
    running = Processes(tmp_path, MAXPORTAL_SIGNAL_MIRROR_ROOT=str(root))
    sender = Celery("mirror-test-sender", set_as_current=False)
    sender.conf.update(broker_url=_broker(), task_default_queue=running.env["SAPWAVE_TEST_QUEUE"])
    # The broker boundary: this process sends to the test's Redis queue, which the worker consumes.
    monkeypatch.setattr(app, "send_task", lambda name, args=(), **options: sender.send_task(name, args=args))
    blocker = root / "lilly_inbox"
    blocker.write_text("not a folder")  # the inbox folder cannot be made: the write fails and is retried
    try:
        running.worker()
        signal = signal_send(signal_type="TEST", sender="portal", recipient=Eidolon.objects.get(slug="lilly"),
                             payload={"summary": "mirror me"})
        _wait_for(lambda: "Retry in" in (tmp_path / "worker.log").read_text(), 20, "the task to be retried")
        blocker.unlink()
        # Only the renamed file counts (the temporary one, ".tmp-*", may be seen mid-write)
        files = _wait_for(lambda: [f for f in blocker.glob("*.yaml") if not f.name.startswith(".tmp-")]
                          if blocker.is_dir() else [], 30, "the YAML file")
        assert [f.name.split("-")[1] for f in files] == [f"{signal.pk:08d}"], running.logs()
    finally:
        running.stop()
