"""Idempotency-Key on the API's writes: a retry gets the first answer and changes nothing;
the same key with another body is 422; keys are per token."""

from eidolons.models import Signal
from leads.models import Lead, StageArtifact, StageTransition
from maxportal.kernel.models import IdempotencyRecord


def test_a_retried_ingest_returns_the_first_response_and_creates_nothing_more(agents):
    body = {"company": "Acme", "email": "anna@acme.example"}
    first = agents["lilly"].post("/leads", body, key="ingest-1")
    again = agents["lilly"].post("/leads", body, key="ingest-1")

    assert first.status_code == again.status_code == 201, "the replay keeps the original status (not 200 duplicate)"
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Lead.objects.count() == 1 and Signal.objects.count() == 1


def test_the_same_key_with_another_body_is_422_and_changes_nothing(agents):
    agents["lilly"].post("/leads", {"company": "Acme", "email": "anna@acme.example"}, key="k")

    response = agents["lilly"].post("/leads", {"company": "Other", "email": "bob@other.example"}, key="k")

    assert response.status_code == 422 and response.json()["error"] == "idempotency_key_reused"
    assert Lead.objects.count() == 1


def test_a_retried_handoff_returns_the_original_answer_not_a_409(agents, lead_id):
    first = agents["lilly"].post(f"/leads/{lead_id}/handoff", {"summary": "qualified"}, key="h1")
    again = agents["lilly"].post(f"/leads/{lead_id}/handoff", {"summary": "qualified"}, key="h1")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert StageTransition.objects.filter(lead_id=lead_id, move="handoff").count() == 1
    assert Lead.objects.get(pk=lead_id).stage == "FirstResponder"


def test_a_new_key_for_the_same_handoff_is_a_new_request_and_gets_409(agents, lead_id):
    agents["lilly"].post(f"/leads/{lead_id}/handoff", {}, key="h1")
    response = agents["lilly"].post(f"/leads/{lead_id}/handoff", {}, key="h2")
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"


def test_a_refusal_is_stored_and_replayed_too(agents, lead_id):
    first = agents["lilly"].post(f"/leads/{lead_id}/complete", {}, key="c1")
    again = agents["lilly"].post(f"/leads/{lead_id}/complete", {}, key="c1")
    assert first.status_code == again.status_code == 409 and again.json() == first.json()
    assert first.json()["error"] == "conflict"


def test_validation_failures_are_not_stored_so_the_key_can_be_used_after_fixing_the_body(agents, lead_id):
    bad = agents["lilly"].post(f"/leads/{lead_id}/escalate", {"reason": ""}, key="e1")
    assert bad.status_code == 422
    assert not IdempotencyRecord.objects.filter(key="e1").exists()


def test_keys_are_per_token(agents, max_plan):
    from eidolons.models import Eidolon
    from eidolons.services import api_token_issue
    from tests.agents_api import AgentClient

    other = AgentClient(api_token_issue(eidolon=Eidolon.objects.get(slug="lilly"))[1])
    a = agents["lilly"].post("/leads", {"company": "A", "email": "a@a.example"}, key="same")
    b = other.post("/leads", {"company": "B", "email": "b@b.example"}, key="same")
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]


def test_an_artifact_upload_retried_with_the_same_key_is_stored_once(agents, lead_id, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    data = {"name": "brief.md", "text": "hello"}
    first = agents["lilly"].upload(f"/leads/{lead_id}/artifacts", data, key="a1")
    again = agents["lilly"].upload(f"/leads/{lead_id}/artifacts", data, key="a1")
    other = agents["lilly"].upload(f"/leads/{lead_id}/artifacts", {"name": "brief.md", "text": "changed"}, key="a1")

    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    assert StageArtifact.objects.count() == 1


def test_an_unusable_key_is_refused(agents):
    response = agents["lilly"].post("/leads", {"company": "Acme"}, key="x" * 300)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_idempotency_key"
    assert Lead.objects.count() == 0


def test_staff_sessions_have_their_own_keys(staff_api, max_plan):
    first = staff_api.post("/leads", {"company": "Acme", "email": "anna@acme.example"}, key="s1")
    again = staff_api.post("/leads", {"company": "Acme", "email": "anna@acme.example"}, key="s1")
    assert first.status_code == again.status_code == 201 and Lead.objects.count() == 1
    assert IdempotencyRecord.objects.get(key="s1").owner.startswith("user:")


def test_answers_older_than_the_ttl_are_purged_and_newer_ones_kept(agents, settings):
    from datetime import timedelta

    from django.conf import settings as live_settings
    from django.utils import timezone

    from maxportal.kernel.idempotency import idempotency_records_purge

    settings.MAXPORTAL_IDEMPOTENCY_TTL_HOURS = 24
    agents["lilly"].post("/leads", {"company": "Old", "email": "a@old.example"}, key="old")
    agents["lilly"].post("/leads", {"company": "New", "email": "a@new.example"}, key="new")
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))

    assert idempotency_records_purge() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    assert idempotency_records_purge() == 0, "a second run deletes nothing"
    assert live_settings.CELERY_BEAT_SCHEDULE["kernel-idempotency-purge"]["task"] == "kernel.idempotency_purge"
