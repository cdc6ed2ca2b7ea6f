"""Bad input at the edges of the API: oversized bodies and NUL characters get a JSON 4xx naming the problem."""

from eidolons.models import Signal
from leads.models import Lead


def test_a_body_over_the_upload_limit_is_413_json(agents, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = agents["lilly"].post("/leads", {"company": "Acme", "data": {"x": "y" * 20_000}})
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert Lead.objects.count() == 0


def test_a_nul_character_anywhere_is_a_4xx_not_a_500(agents, lead_id):
    sent = agents["lilly"].post("/signals", {"type": "TASK_ASSIGNMENT", "to": "mi\x00ke"})
    listed = agents["lilly"].get("/leads", {"owner": "li\x00lly"})
    moved = agents["lilly"].post(f"/leads/{lead_id}/handoff", {"summary": "ok\x00"})
    # A NUL in a slug matches no Eidolon; in a filter, no lead; in stored text, it is refused.
    assert sent.status_code == 404
    assert (sent.json()["error"], sent.json()["field"]) == ("not_found", "to")
    assert listed.status_code == 200
    assert listed.json()["count"] == 0
    assert moved.status_code == 422
    assert moved.json()["error"] == "invalid" and list(moved.json()["fields"]) == ["summary"]
    assert not Signal.objects.filter(signal_type="TASK_ASSIGNMENT").exists()
    assert Lead.objects.get(pk=lead_id).stage == "LeadGen"
