"""/healthz: 200 with the database and broker checked, 503 naming what is down."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_healthz_is_ok_when_database_and_broker_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_healthz_names_the_broker_when_it_is_down(client, settings):
    # A Redis URL on a port nothing listens on (loopback): a real refused connection.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down" and body["down"] == ["broker"]
    assert body["database"] == "ok"
    assert "Error" in body["broker"] or "refused" in body["broker"].lower()


def test_healthz_names_both_when_database_and_broker_are_down():
    """A separate process whose database and broker point at closed loopback ports."""
    code = (
        "import django, json; django.setup();"
        "from django.test import Client; r = Client().get('/healthz');"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "maxportal.settings",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere",
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        "DJANGO_ALLOWED_HOSTS": "testserver",
    }
    done = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 503
    assert result["body"]["down"] == ["broker", "database"]
    assert "127.0.0.1" in result["body"]["database"] or "connect" in result["body"]["database"].lower()
