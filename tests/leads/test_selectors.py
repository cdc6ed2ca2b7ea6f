"""Reads of the leads app: workload per stage, owners' leads."""

from leads.models import Lead
from leads.selectors import leads_owned_by, open_leads_by_stage


def test_open_leads_by_stage_counts_only_open_leads(agents, lead_id):
    # Given a second lead, failed
    second = agents["lilly"].post("/leads", {"company": "Beta AG", "email": "bo@beta.example"}).json()["id"]
    Lead.objects.filter(pk=second).update(status="failed")

    assert open_leads_by_stage() == {"LeadGen": 1}


def test_leads_owned_by_follows_the_eidolons_stage(agents, lead_id):
    assert [str(lead.pk) for lead in leads_owned_by(Lead.objects.all(), slug="lilly")] == [lead_id]
    assert list(leads_owned_by(Lead.objects.all(), slug="mike")) == []
    assert list(leads_owned_by(Lead.objects.all(), slug="maestro")) == []
