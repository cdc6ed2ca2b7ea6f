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


@pytest.fixture
def celery_inline(monkeypatch):
    """The broker boundary, executed in-process: a task sent by name after commit runs at once
    (for tests of what a task writes; what a worker does is tested with real workers)."""
    from maxportal.celery import app

    app.autodiscover_tasks(force=True)  # every app's tasks module, as a worker loads them

    def send_task(name, args=(), kwargs=None, **options):
        return app.tasks[name].apply(args=args, kwargs=kwargs)

    monkeypatch.setattr(app, "send_task", send_task)
