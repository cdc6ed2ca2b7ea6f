"""Leads moving through the seven MAX stages (the architecture synthesis's ClientState).

Invariants kept here and by the database:
- a lead's stage and status change only through ``leads.services`` (which asks ``leads.stages``);
- ``StageTransition`` rows are never updated or deleted: they are the lead's audit trail;
- a transition that hands a lead to another Eidolon points at the signal it produced (both are
  written in one transaction);
- one open lead per normalised email and per company domain (partial unique constraints);
- one artifact name per lead and stage;
- a lead's value is an amount with its currency or neither (a check constraint);
- one ``StageSetting`` per stage (the board's stale threshold, the pipeline's win probability).
"""

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from eidolons.choices import STAGE_FOLDERS, PipelineStage

from .choices import (
    LEAD_OPEN_STATUSES,
    LeadMoveChoices,
    LeadSourceChoices,
    LeadStatusChoices,
    StageArtifactKindChoices,
)


class Lead(models.Model):
    """A prospective client on its way through the pipeline (the seed's ClientState)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, help_text="The lead_id.")
    company = models.CharField(max_length=200)
    contact_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True, help_text="The contact's email as given.")
    email_normalized = models.CharField(
        max_length=254, blank=True, db_index=True, editable=False,
        help_text="Lower-cased email: an open lead with the same one is a duplicate.",
    )
    company_domain = models.CharField(
        max_length=253, blank=True, db_index=True,
        help_text=(
            "The company's email domain (empty for free-mail addresses): "
            "an open lead with the same one is a duplicate."
        ),
    )
    phone = models.CharField(max_length=50, blank=True)
    source = models.CharField(max_length=20, choices=LeadSourceChoices.choices, default=LeadSourceChoices.OTHER)
    stage = models.CharField(
        max_length=20, choices=PipelineStage.choices, default=PipelineStage.LEAD_GEN,
        help_text="ClientState.current_stage: the stage (and so the Eidolon) the lead is with.",
    )
    status = models.CharField(
        max_length=20, choices=LeadStatusChoices.choices, default=LeadStatusChoices.IN_PROGRESS
    )
    data = models.JSONField(default=dict, blank=True, help_text="Stage-specific data (ClientState.data).")
    next_action = models.CharField(max_length=500, blank=True, help_text="What happens next, in a sentence.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    stage_entered_at = models.DateTimeField(help_text="When the lead entered its current stage.")
    amount = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="What the deal is worth, if known (the weighted pipeline value counts it).",
    )
    currency = models.CharField(
        max_length=3, blank=True, validators=[RegexValidator(r"^[A-Z]{3}$", "Use an ISO 4217 code such as EUR.")],
        help_text="ISO 4217 code of the amount (EUR, USD); empty when there is no amount.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["stage", "status"], name="lead_stage_status")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(amount__isnull=True) & Q(currency=""))
                | (Q(amount__isnull=False, amount__gte=0) & ~Q(currency="")),
                name="lead_amount_with_currency",
            ),
            models.UniqueConstraint(
                fields=["email_normalized"],
                condition=Q(status__in=LEAD_OPEN_STATUSES) & ~Q(email_normalized=""),
                name="lead_one_open_per_email",
            ),
            models.UniqueConstraint(
                fields=["company_domain"],
                condition=Q(status__in=LEAD_OPEN_STATUSES) & ~Q(company_domain=""),
                name="lead_one_open_per_company_domain",
            ),
            models.CheckConstraint(
                condition=Q(stage__in=PipelineStage.values), name="lead_stage_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=LeadStatusChoices.values), name="lead_status_valid"
            ),
        ]

    def __str__(self):
        return f"{self.company} ({self.stage}, {self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in LEAD_OPEN_STATUSES

    def stage_folder(self, stage: str | None = None) -> str:
        """The storage path of a stage's artifact folder, as the synthesis lays it out."""
        folder = STAGE_FOLDERS[PipelineStage(stage or self.stage)]
        return f"{settings.MAXPORTAL_PIPELINE_STORAGE_PREFIX}/{self.pk}/{folder}/"


class StageTransition(models.Model):
    """One entry of a lead's history (ClientState.history): a move of the stage machine.

    Append-only. The actor is an Eidolon (and the agent that spoke for it) or a human user.
    """

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="transitions")
    move = models.CharField(max_length=20, choices=LeadMoveChoices.choices)
    from_stage = models.CharField(max_length=20, choices=PipelineStage.choices, blank=True)
    to_stage = models.CharField(max_length=20, choices=PipelineStage.choices)
    from_status = models.CharField(max_length=20, choices=LeadStatusChoices.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=LeadStatusChoices.choices)
    actor_eidolon = models.ForeignKey(
        "eidolons.Eidolon", on_delete=models.PROTECT, null=True, blank=True, related_name="lead_transitions"
    )
    actor_agent = models.ForeignKey(
        "eidolons.CliAgent", on_delete=models.SET_NULL, null=True, blank=True, related_name="lead_transitions",
        help_text="Which of the Eidolon's CLI agents made the move, when it said so.",
    )
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="lead_transitions"
    )
    summary = models.TextField(blank=True, help_text="What was done and why (goes into the signal).")
    signal = models.OneToOneField(
        "eidolons.Signal", on_delete=models.PROTECT, null=True, blank=True, related_name="transition",
        help_text="The signal this move sent to the next Eidolon.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(actor_eidolon__isnull=False) | Q(actor_user__isnull=False),
                name="transition_has_an_actor",
            ),
        ]

    def __str__(self):
        before = f"{self.from_stage or '-'}/{self.from_status or '-'}"
        return f"{self.lead_id}: {self.move} {before} -> {self.to_stage}/{self.to_status}"

    @property
    def actor_label(self) -> str:
        if self.actor_user_id:
            return f"user {self.actor_user}"
        if self.actor_agent_id:
            return str(self.actor_agent)
        return str(self.actor_eidolon)


def _artifact_upload_to(instance: "StageArtifact", filename: str) -> str:
    return f"{instance.lead.stage_folder(instance.stage)}{instance.name}"


class StageArtifact(models.Model):
    """A file or text a stage produced for a lead: a transcript, requirements, a mockup, a contract.

    Files live in Django storage under ``<prefix>/<lead>/stage-N-name/`` (the synthesis's layout).
    """

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="artifacts")
    stage = models.CharField(max_length=20, choices=PipelineStage.choices)
    kind = models.CharField(max_length=10, choices=StageArtifactKindChoices.choices)
    name = models.CharField(max_length=200, help_text="File name inside the stage folder.")
    file = models.FileField(upload_to=_artifact_upload_to, max_length=500, blank=True)
    text = models.TextField(blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the content, hex.")
    uploaded_by_eidolon = models.ForeignKey(
        "eidolons.Eidolon", on_delete=models.PROTECT, null=True, blank=True, related_name="artifacts"
    )
    uploaded_by_agent = models.ForeignKey(
        "eidolons.CliAgent", on_delete=models.SET_NULL, null=True, blank=True, related_name="artifacts"
    )
    uploaded_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="artifacts"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["lead", "stage", "name"], name="artifact_name_unique_per_lead_stage"),
        ]

    def __str__(self):
        return f"{self.lead_id}/{self.stage}/{self.name}"

    @property
    def path(self) -> str:
        return self.file.name if self.file else f"{self.lead.stage_folder(self.stage)}{self.name}"


class StageSetting(models.Model):
    """How the sales team judges a stage: when a lead in it goes stale, how likely it is to be won.

    One row per stage (created by the migration with the defaults; edited in the admin). The board
    reads ``stale_after_hours``; the funnel's weighted pipeline value reads ``win_probability``.
    """

    stage = models.CharField(max_length=20, choices=PipelineStage.choices, unique=True)
    stale_after_hours = models.PositiveIntegerField(
        default=72, validators=[MinValueValidator(1)],
        help_text="A lead in this stage longer than this, with nothing scheduled for it, shows as stale on the board.",
    )
    win_probability = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(100)],
        help_text="Percent of a lead's value counted in the weighted pipeline while it is in this stage.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(stage__in=PipelineStage.values), name="stagesetting_stage_valid"),
            models.CheckConstraint(condition=Q(win_probability__lte=100), name="stagesetting_probability_le_100"),
            models.CheckConstraint(condition=Q(stale_after_hours__gte=1), name="stagesetting_stale_after_positive"),
        ]

    def __str__(self):
        return f"{self.stage}: stale after {self.stale_after_hours} h, {self.win_probability}%"


class LeadNote(models.Model):
    """A note a person added to a lead (the lead page's timeline shows it with its author)."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="lead_notes")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.CheckConstraint(condition=~Q(text=""), name="leadnote_text_not_empty")]

    def __str__(self):
        return f"note on {self.lead_id} by {self.author_id}"
