"""A lead's value (amount and currency), the per-stage settings and notes: the model's invariants."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from eidolons.choices import PIPELINE_ORDER
from leads import services
from leads.models import Lead, LeadNote, StageSetting
from maxportal.kernel.actors import Actor

pytestmark = pytest.mark.django_db


def test_every_stage_has_its_setting_from_the_migration():
    rows = {s.stage: s for s in StageSetting.objects.all()}
    assert list(rows) == [s.value for s in PIPELINE_ORDER]
    assert rows["LeadGen"].stale_after_hours == 24 and rows["DeliveryPM"].win_probability == 90


def test_staff_ingests_a_lead_with_its_value(max_plan, staff_user):
    lead, duplicate = services.lead_ingest(actor=Actor.for_user(staff_user), company="Acme", email="a@acme.example",
                                           amount=Decimal("12000.50"), currency="eur")
    lead.refresh_from_db()
    assert duplicate is None and lead.amount == Decimal("12000.50") and lead.currency == "EUR"


def test_an_amount_without_a_currency_is_refused_naming_the_field(max_plan, staff_user):
    with pytest.raises(ValidationError) as refused:
        services.lead_ingest(actor=Actor.for_user(staff_user), company="Acme", amount=Decimal(5))
    assert "currency" in refused.value.message_dict
    assert not Lead.objects.exists()


def test_the_database_refuses_a_currency_without_an_amount():
    with pytest.raises(IntegrityError), transaction.atomic():
        Lead.objects.create(company="X", currency="EUR", stage_entered_at=timezone.now())


def test_updating_details_keeps_amount_and_currency_together(max_plan, staff_user):
    actor = Actor.for_user(staff_user)
    lead, _ = services.lead_ingest(actor=actor, company="Acme", email="a@acme.example")
    services.lead_update_details(lead_id=lead.pk, actor=actor, amount=Decimal(900), currency="usd")
    lead.refresh_from_db()
    assert (lead.amount, lead.currency) == (Decimal(900), "USD")
    with pytest.raises(ValidationError):
        services.lead_update_details(lead_id=lead.pk, actor=actor, currency="")


def test_a_note_needs_text(max_plan, staff_user):
    lead = Lead.objects.create(company="X", stage_entered_at=timezone.now())
    with pytest.raises(IntegrityError), transaction.atomic():
        LeadNote.objects.create(lead=lead, author=staff_user, text="")


def test_the_ingest_api_accepts_a_value(agents):
    response = agents["lilly"].post("/leads", {"company": "Beta", "email": "b@beta.example",
                                               "amount": "25000", "currency": "EUR"})
    assert response.status_code == 201, response.content
    lead = Lead.objects.get(pk=response.json()["id"])
    assert (lead.amount, lead.currency) == (Decimal(25000), "EUR")


def test_the_ingest_api_refuses_an_amount_without_currency(agents):
    response = agents["lilly"].post("/leads", {"company": "Beta", "amount": "10"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid"
