"""Bad input at the edges of the API: oversized bodies and NUL characters get a JSON 4xx naming the problem."""

from eidolons.models import Signal
from leads.models import Lead


def test_a_body_over_the_upload_limit_is_413_json(agents, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = agents["lilly"].post("/leads", {"company": "Acme", "data": {"x": "y" * 20_000}})
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert Lead.objects.count() == 0


def test_a_nul_character_in_a_slug_is_refused_by_the_schema_with_422_on_the_field(agents):
    """NUL is never storable text: the schema says so (pattern) and request validation refuses it."""
    sent = agents["lilly"].post("/signals", {"type": "TASK_ASSIGNMENT", "to": "mi\x00ke"})
    assert sent.status_code == 422
    assert (sent.json()["error"], list(sent.json()["fields"])) == ("invalid", ["to"])
    assert not Signal.objects.filter(signal_type="TASK_ASSIGNMENT").exists()


def test_a_nul_character_in_a_filter_is_422_on_the_filter(agents, lead_id):
    listed = agents["lilly"].get("/leads", {"owner": "li\x00lly"})
    assert listed.status_code == 422
    assert (listed.json()["error"], list(listed.json()["fields"])) == ("invalid", ["owner"])


def test_a_nul_character_in_stored_text_is_422_and_moves_nothing(agents, lead_id):
    moved = agents["lilly"].post(f"/leads/{lead_id}/handoff", {"summary": "ok\x00"})
    assert moved.status_code == 422
    assert moved.json()["error"] == "invalid" and list(moved.json()["fields"]) == ["summary"]
    assert Lead.objects.get(pk=lead_id).stage == "LeadGen"
