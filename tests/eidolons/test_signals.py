"""Signals: sending into an inbox, acknowledging, delivery and redelivery, the YAML mirror."""

from datetime import timedelta

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.utils import timezone

from eidolons.choices import SignalTypeChoices
from eidolons.models import Eidolon, Signal
from eidolons.selectors import inbox_pending
from eidolons.services import signal_acknowledge, signal_claim, signal_mirror_write, signal_send
from maxportal.kernel.errors import NotFound


@pytest.fixture
def clara(max_plan):
    return Eidolon.objects.get(slug="clara")


def _send(recipient, **kw):
    return signal_send(
        signal_type=kw.pop("signal_type", SignalTypeChoices.TEST),
        sender=kw.pop("sender", "portal"),
        recipient=recipient,
        payload=kw.pop("payload", {"summary": "hello"}),
        **kw,
    )


def test_signal_send_puts_the_signal_in_the_recipients_inbox_only(mike, clara):
    signal = _send(mike)

    assert list(inbox_pending(eidolon=mike)) == [signal], "the signal is pending in Mike's inbox"
    assert list(inbox_pending(eidolon=clara)) == [], "Clara's inbox does not show Mike's signal"
    assert signal.delivered_at is None and signal.acknowledged_at is None and signal.delivery_count == 0


def test_signal_send_refuses_an_agent_of_another_eidolon(mike, clara):
    with pytest.raises(ValidationError) as err:
        _send(mike, agent=clara.agents.first())
    assert "agent" in err.value.message_dict
    assert Signal.objects.count() == 0, "nothing is written"


def test_signal_send_refuses_an_unknown_type(mike):
    with pytest.raises(ValidationError) as err:
        _send(mike, signal_type="SMOKE")
    assert "signal_type" in err.value.message_dict


def test_signal_send_refuses_a_payload_over_the_limit_naming_the_field(mike, settings):
    settings.MAXPORTAL_API_MAX_JSON_BYTES = 100
    with pytest.raises(ValidationError) as err:
        _send(mike, payload={"summary": "x" * 200})
    assert "payload" in err.value.message_dict and "limit is 100" in err.value.message_dict["payload"][0]


def test_signal_send_refuses_a_nul_character(mike):
    with pytest.raises(ValidationError) as err:
        _send(mike, payload={"summary": "a\x00b"})
    assert "NUL" in err.value.message_dict["payload"][0]


def test_signal_acknowledge_marks_it_and_is_idempotent(mike):
    signal = _send(mike)

    first = signal_acknowledge(signal_id=signal.pk, eidolon=mike)
    again = signal_acknowledge(signal_id=signal.pk, eidolon=mike)

    assert first.acknowledged_at is not None
    assert again.acknowledged_at == first.acknowledged_at, "a second ack changes nothing"
    assert list(inbox_pending(eidolon=mike)) == []


def test_signal_acknowledge_of_another_eidolons_signal_is_not_found_and_changes_nothing(mike, clara):
    signal = _send(mike)

    with pytest.raises(NotFound):
        signal_acknowledge(signal_id=signal.pk, eidolon=clara)

    signal.refresh_from_db()
    assert signal.acknowledged_at is None


def test_signal_claim_delivers_once_until_the_visibility_timeout_then_again(mike, settings):
    settings.MAXPORTAL_SIGNAL_VISIBILITY_TIMEOUT = 60
    signal = _send(mike)

    first = signal_claim(eidolon=mike)
    second = signal_claim(eidolon=mike)
    assert [s.pk for s in first] == [signal.pk] and second == [], "a delivered signal is not delivered twice at once"

    Signal.objects.filter(pk=signal.pk).update(delivered_at=timezone.now() - timedelta(seconds=61))
    third = signal_claim(eidolon=mike)
    assert [s.pk for s in third] == [signal.pk], "unacknowledged past the timeout: delivered again"
    assert third[0].delivery_count == 2

    signal_acknowledge(signal_id=signal.pk, eidolon=mike)
    Signal.objects.filter(pk=signal.pk).update(delivered_at=timezone.now() - timedelta(seconds=61))
    assert signal_claim(eidolon=mike) == [], "an acknowledged signal never comes back"


def test_signal_for_one_agent_is_delivered_to_that_agent_only(mike):
    claude = mike.agents.get(kind="claude")
    codex = mike.agents.get(kind="codex")
    signal = _send(mike, agent=claude)

    assert signal_claim(eidolon=mike, agent=codex) == []
    assert [s.pk for s in signal_claim(eidolon=mike, agent=claude)] == [signal.pk]


def test_mirror_writes_the_seed_shaped_yaml_into_the_inbox_folder(
    mike, settings, tmp_path, django_capture_on_commit_callbacks, celery_inline
):
    settings.MAXPORTAL_SIGNAL_MIRROR_ROOT = str(tmp_path)
    payload = {"from": "LILLy", "to": "Mike", "lead_id": "abc-123", "previous_stage": "LeadGen",
               "next_stage": "FirstResponder", "summary": "Lead qualified", "data_path": "max-pipeline/abc-123/"}

    with django_capture_on_commit_callbacks(execute=True):
        signal = _send(mike, signal_type=SignalTypeChoices.PIPELINE_TRANSITION, sender="LILLy", payload=payload)

    files = list((tmp_path / "mike_inbox").iterdir())
    assert len(files) == 1 and files[0].suffix == ".yaml", "one file, no temporary file left behind"
    doc = yaml.safe_load(files[0].read_text())
    assert doc["type"] == "PIPELINE_TRANSITION"
    assert {k: doc[k] for k in payload} == payload
    assert doc["signal_id"] == signal.pk


def test_mirror_is_off_without_the_setting(mike, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.MAXPORTAL_SIGNAL_MIRROR_ROOT = ""
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        signal = _send(mike)
    assert signal_mirror_write(signal_id=signal.pk) is None
    assert list(tmp_path.iterdir()) == []
    from django.db import connection

    local_wakeups = 0 if connection.vendor == "postgresql" else 1  # PostgreSQL wakes polls by NOTIFY
    assert len(callbacks) == local_wakeups, "no mirror write is scheduled"


def test_mirror_is_written_only_after_commit(mike, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.MAXPORTAL_SIGNAL_MIRROR_ROOT = str(tmp_path)
    with django_capture_on_commit_callbacks(execute=False):
        _send(mike)
        assert not (tmp_path / "mike_inbox").exists(), "no file before the transaction commits"


def test_a_failed_mirror_write_leaves_no_partial_or_temporary_file(mike, settings, tmp_path, monkeypatch,
                                                                    django_capture_on_commit_callbacks, celery_inline):
    settings.MAXPORTAL_SIGNAL_MIRROR_ROOT = str(tmp_path)

    def half_write(doc, fh, **kw):
        fh.write("type: PIPELINE_TRAN")
        raise OSError("disk full")

    monkeypatch.setattr("eidolons.services.yaml.safe_dump", half_write)
    with django_capture_on_commit_callbacks(execute=True):
        signal = _send(mike)

    assert list((tmp_path / "mike_inbox").iterdir()) == [], "no half-written file, no temporary file"
    assert Signal.objects.filter(pk=signal.pk).exists(), "the database keeps the signal"
