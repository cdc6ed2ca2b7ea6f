"""Validators for Proxmox data, with messages a person can act on."""

import re

from django.core.exceptions import ValidationError

# Proxmox accepts container ids from 100 to 999,999,999 (ids below 100 are reserved).
VMID_MIN = 100
VMID_MAX = 999_999_999

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def validate_vmid(value: int) -> None:
    if not VMID_MIN <= value <= VMID_MAX:
        raise ValidationError(
            "vmid %(value)s is out of range: Proxmox container ids run from %(min)s to %(max)s.",
            code="vmid_range",
            params={"value": value, "min": VMID_MIN, "max": VMID_MAX},
        )


def validate_hostname(value: str) -> None:
    """An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens."""
    if not value or len(value) > 253:
        raise ValidationError(
            "Host name must be 1 to 253 characters long (got %(length)s).",
            code="hostname_length",
            params={"length": len(value or "")},
        )
    for label in value.split("."):
        if not _LABEL.match(label):
            raise ValidationError(
                "'%(value)s' is not a valid host name (RFC 1123): the part '%(label)s' must be 1 to 63 "
                "letters, digits or hyphens, and may not start or end with a hyphen. Example: lilly.",
                code="hostname_rfc1123",
                params={"value": value, "label": label},
            )
