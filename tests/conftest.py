"""Fixtures shared by every app's tests."""

import pytest

from provisioning.plan import max_plan_load


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Templates resolve {% static %} without a collectstatic manifest in tests."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def max_plan(db):
    """The MAX plan loaded: the AX42, CT100 and CT201-207, nine Eidolons, 36 agents, 7 mailboxes."""
    return max_plan_load()


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        username="operator", password="operator-pass-123", is_staff=True, is_superuser=True
    )


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


# --- SapWaves (issue 9) ---------------------------------------------------------------------------


@pytest.fixture
def sent_tasks(monkeypatch):
    """The broker boundary: tasks the services send by name (after commit) are collected here."""
    from maxportal.celery import app

    sent = []
    def send_task(name, args=(), countdown=None, **options):
        sent.append((name, args, countdown))

    monkeypatch.setattr(app, "send_task", send_task)
    return sent
