"""Validators for Eidolon data whose messages say what to do."""

from django.conf import settings
from django.core.exceptions import ValidationError


def validate_mailbox_domain(address: str) -> None:
    """A mailbox must belong to one of the M365 tenant's domains (MAXPORTAL_MAILBOX_DOMAINS)."""
    domains = [d.lower() for d in settings.MAXPORTAL_MAILBOX_DOMAINS]
    domain = address.rpartition("@")[2].lower()
    if domain not in domains:
        raise ValidationError(
            "The mailbox %(address)s is not in the M365 tenant: use an address at %(domains)s "
            "(or add the domain to MAXPORTAL_MAILBOX_DOMAINS).",
            code="mailbox_domain",
            params={"address": address, "domains": ", ".join(domains)},
        )
