"""Choices of the leads app: a lead's status, where it came from, what an artifact is, and the moves.

The stages themselves are ``eidolons.choices.PipelineStage`` (each stage is owned by one Eidolon).
"""

from django.db import models


class LeadStatusChoices(models.TextChoices):
    """ClientState.status in the architecture synthesis."""

    IN_PROGRESS = "in_progress", "In progress"
    AWAITING_HUMAN = "awaiting_human", "Awaiting a human"
    COMPLETED = "completed", "Completed"
    ESCALATED = "escalated", "Escalated"
    FAILED = "failed", "Failed"


# A lead is "open" until it is completed or failed: open leads take part in duplicate detection,
# count in an Eidolon's workload, and cannot be reopened.
LEAD_CLOSED_STATUSES = (LeadStatusChoices.COMPLETED, LeadStatusChoices.FAILED)
LEAD_OPEN_STATUSES = tuple(s for s in LeadStatusChoices if s not in LEAD_CLOSED_STATUSES)


class LeadSourceChoices(models.TextChoices):
    """How a lead entered the pipeline (the synthesis asks: website form? email?)."""

    WEBSITE = "website", "Website form"
    EMAIL = "email", "Email"
    REFERRAL = "referral", "Referral"
    LINKEDIN = "linkedin", "LinkedIn"
    OUTBOUND = "outbound", "Outbound (found by LILLy)"
    MANUAL = "manual", "Entered by a human"
    OTHER = "other", "Other"


class StageArtifactKindChoices(models.TextChoices):
    FILE = "file", "File"
    TEXT = "text", "Text"


class LeadMoveChoices(models.TextChoices):
    """The moves of the stage machine (leads/stages.py says who may make which, from where)."""

    INGEST = "ingest", "Ingest"
    HANDOFF = "handoff", "Hand off to the next stage"
    ESCALATE = "escalate", "Escalate to a human"
    AWAIT_HUMAN = "await_human", "Wait for a human"
    RESOLVE = "resolve", "Resolve (back to in progress)"
    FAIL = "fail", "Fail"
    COMPLETE = "complete", "Complete"
    REOPEN = "reopen", "Reopen"
    REASSIGN = "reassign", "Reassign to another stage"
