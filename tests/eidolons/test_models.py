"""Eidolon data rules: mailbox domain, one agent per kind, one Eidolon per stage."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from eidolons.choices import PipelineStage, next_stage
from eidolons.models import CliAgent, Eidolon, M365Account

pytestmark = pytest.mark.django_db


def test_mailbox_in_the_tenant_domain_is_accepted():
    M365Account(address="lilly@meetmike.pro", display_name="LILLy").full_clean()


def test_mailbox_domain_is_case_insensitive():
    M365Account(address="Lilly@MeetMike.PRO", display_name="LILLy").full_clean()


def test_mailbox_outside_the_tenant_says_which_domains_are_allowed():
    with pytest.raises(ValidationError) as caught:
        M365Account(address="lilly@gmail.com", display_name="LILLy").full_clean()
    assert caught.value.message_dict["address"] == [
        "The mailbox lilly@gmail.com is not in the M365 tenant: use an address at meetmike.pro "
        "(or add the domain to MAXPORTAL_MAILBOX_DOMAINS)."
    ]


def test_mailbox_domains_come_from_the_setting(settings):
    settings.MAXPORTAL_MAILBOX_DOMAINS = ["example.org"]
    M365Account(address="a@example.org", display_name="A").full_clean()


def test_one_agent_of_each_kind_per_eidolon():
    eidolon = Eidolon.objects.create(name="LILLy", slug="lilly", role="Lead Generator", stage=PipelineStage.LEAD_GEN)
    CliAgent.objects.create(eidolon=eidolon, kind="claude", npm_package="x", tmux_session="max-claude")
    with pytest.raises(IntegrityError), transaction.atomic():
        CliAgent.objects.create(eidolon=eidolon, kind="claude", npm_package="x", tmux_session="max-claude")


def test_one_eidolon_per_stage_but_many_core_eidolons():
    Eidolon.objects.create(name="LILLy", slug="lilly", role="Lead Generator", stage=PipelineStage.LEAD_GEN)
    Eidolon.objects.create(name="Mach42v2", slug="mach42v2", role="core", stage=None)
    Eidolon.objects.create(name="Maestro", slug="maestro", role="core", stage=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        Eidolon.objects.create(name="Pulse", slug="pulse", role="Lead Generator", stage=PipelineStage.LEAD_GEN)


def test_stages_follow_the_plan_order():
    order = []
    stage = PipelineStage.LEAD_GEN
    while stage:
        order.append(stage.value)
        stage = next_stage(stage)
    assert order == ["LeadGen", "FirstResponder", "Scoping", "Orchestra", "Closer", "Onboarding", "DeliveryPM"]
