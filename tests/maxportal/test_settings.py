"""Production settings: a missing secret key stops start-up; check --deploy is clean."""

import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def run_manage(*args, **env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(env_overrides)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_production_without_secret_key_is_a_clear_startup_error():
    done = run_manage("check", DJANGO_DEBUG="0")
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in done.stderr
    assert "DJANGO_SECRET_KEY" in done.stderr and "secrets.token_urlsafe" in done.stderr


def test_check_deploy_prints_no_warnings_in_production():
    done = run_manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="k9-" + "Zx7!Qp2@Lm5#Rt8$Vn3%Bw6^Hy1&Jd4*" * 2,
        DJANGO_ALLOWED_HOSTS="portal.example.internal",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_time_zone_is_utc(settings):
    assert settings.TIME_ZONE == "UTC" and settings.USE_TZ
    assert settings.CELERY_TIMEZONE == "UTC"


def test_the_one_beat_schedule_holds_every_periodic_job_of_the_portal(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert {name: job["task"] for name, job in schedule.items()} == {
        "provisioning-reap-steps": "provisioning.steps_reap",
        "provisioning-drift-check": "provisioning.drift_check",
        "kernel-idempotency-purge": "kernel.idempotency_purge",
        "sapwaves-sweep": "eidolons.sapwaves_sweep",
        "agents-stale-check": "eidolons.agents_stale_check",
    }
