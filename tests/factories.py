"""Test data factories (factory-boy) for what the MAX plan does not load: people and leads.

A lead made here is written straight to the table in the state a test needs (a stage, a status),
as a fixture; every move a test exercises goes through the services or the API.
"""

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from leads.models import Lead


class UserFactory(factory.django.DjangoModelFactory):
    """A person who logs in; not staff."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"person{n}")
    password = factory.django.Password("a-long-pass-123")


class StaffUserFactory(UserFactory):
    """A staff superuser: the sales team and operators."""

    is_staff = True
    is_superuser = True


class LeadFactory(factory.django.DjangoModelFactory):
    """A lead at a given stage and status; its email decides its duplicate keys."""

    class Meta:
        model = Lead

    company = "Acme"
    email = "anna@acme.example"
    email_normalized = factory.LazyAttribute(lambda o: o.email.lower())
    company_domain = factory.LazyAttribute(lambda o: o.email.rpartition("@")[2])
    stage = "LeadGen"
    status = "in_progress"
    stage_entered_at = factory.LazyFunction(timezone.now)
