"""Loading a plan of records idempotently: create what is missing, never overwrite, report what differs.

A plan (the MAX plan's host, containers and Eidolons) is where things start, not a reset button:
an operator may have changed a record on purpose (more memory for Clara), so an existing record
is left as it is and each planned value it no longer has is reported. Values are compared as
plain values (a ``TextChoices`` member and the string stored for it are the same value), and
state the portal changes as it works (an agent's status) is set on creation and never compared.
"""

from dataclasses import dataclass, field
from enum import Enum

from django.db import models


@dataclass
class PlanLoadReport:
    """What a load of a plan did: records created, and existing ones that differ from the plan."""

    created: list[str] = field(default_factory=list)
    unchanged: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def changed_nothing(self) -> bool:
        return not self.created


def _plain(value):
    """The value as stored: a related record by its key, a choice by its value."""
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, Enum):
        return value.value
    return value


def record_ensure(
    report: PlanLoadReport, model: type[models.Model], lookup: dict, values: dict, *, initial: dict | None = None
) -> models.Model:
    """The record ``lookup`` finds, created (validated) with ``values`` and ``initial`` when missing.

    An existing record is not changed; each of ``values`` it does not have is added to the report.
    ``initial`` is what a new record starts with and the portal changes later (a status): never compared.
    """
    instance = model.objects.filter(**lookup).first()
    label = model._meta.verbose_name
    if instance is None:
        instance = model(**lookup, **values, **(initial or {}))
        instance.full_clean()
        instance.save()
        report.created.append(f"{label} {instance}")
        return instance
    report.unchanged += 1
    for name, planned in values.items():
        # By the column (``bridge_id``), not the relation: no query per related record.
        current = getattr(instance, model._meta.get_field(name).attname)
        planned = _plain(planned)
        if current != planned:
            report.differences.append(
                f"{label} {instance}: {name} is {current!r}, the plan says {planned!r} (left as is)"
            )
    return instance
