"""Eidolons, their four CLI agents and their M365 mailboxes.

An Eidolon is one AI persona of the MAX plan (LILLy, Mike, ...). Its four CLI agents (Claude Code,
Gemini CLI, Codex, Copilot) are "the inner voices of one shared mind". Invariants kept by the
database: one Eidolon per pipeline stage, one agent of each kind per Eidolon, one Eidolon per
container and per mailbox.
"""

from django.conf import settings
from django.core.validators import MinLengthValidator
from django.db import models

from .choices import (
    CliAgentKindChoices,
    CliAgentStatusChoices,
    M365AccountStateChoices,
    PipelineStage,
    SignalTypeChoices,
)
from .validators import validate_mailbox_domain


class M365Account(models.Model):
    """A Microsoft 365 mailbox of an Eidolon (Teams and Outlook, Business Basic licence).

    Created by hand in the meetmike.pro tenant (provisioning plan, phase 1); the portal tracks it
    from requested to verified.
    """

    address = models.EmailField(
        unique=True,
        validators=[validate_mailbox_domain],
        help_text="The Eidolon's mailbox in the M365 tenant, e.g. lilly@meetmike.pro.",
    )
    display_name = models.CharField(max_length=100)
    licence = models.CharField(
        max_length=60, default="Business Basic", help_text="M365 licence (Business Basic is sufficient)."
    )
    teams_enabled = models.BooleanField(default=True, help_text="Can chat with other agents and humans.")
    outlook_enabled = models.BooleanField(default=True, help_text="Can send and receive email.")
    state = models.CharField(
        max_length=20, choices=M365AccountStateChoices.choices, default=M365AccountStateChoices.REQUESTED
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["address"]
        verbose_name = "M365 account"

    def __str__(self):
        return self.address


class Eidolon(models.Model):
    """One AI persona: a unified mind made of four CLI agents, living in its own LXC container.

    The seven MAX Eidolons each own one pipeline stage; the core Eidolons (Mach42v2, Maestro)
    own none and support them. Maestro runs on a laptop and has no container.
    """

    name = models.CharField(max_length=50, unique=True, help_text="The persona's name, e.g. LILLy.")
    slug = models.SlugField(
        max_length=50, unique=True, help_text="Lower-case name used for the Linux user and the inbox folder."
    )
    role = models.CharField(max_length=100, help_text="What the Eidolon does, e.g. Lead Generator.")
    stage = models.CharField(
        max_length=20,
        choices=PipelineStage.choices,
        null=True,
        blank=True,
        unique=True,
        help_text="The pipeline stage this Eidolon owns; empty for the core Eidolons.",
    )
    container = models.OneToOneField(
        "provisioning.Container",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="eidolon",
        help_text="The LXC container it lives in; empty for Maestro (local on a laptop).",
    )
    mailbox = models.OneToOneField(
        M365Account,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="eidolon",
        help_text="Its M365 mailbox (the seven MAX Eidolons have one).",
    )
    personality_notes = models.TextField(blank=True, help_text="Communication style (personality-traits.md).")

    class Meta:
        ordering = ["container__vmid", "name"]

    def __str__(self):
        return self.name

    @property
    def is_core(self) -> bool:
        """Core Eidolons (Mach42v2, Maestro) own no stage."""
        return not self.stage


class CliAgent(models.Model):
    """One of an Eidolon's four CLI coding agents, run by systemd in a tmux session."""

    eidolon = models.ForeignKey(Eidolon, on_delete=models.CASCADE, related_name="agents")
    kind = models.CharField(max_length=10, choices=CliAgentKindChoices.choices)
    npm_package = models.CharField(max_length=100, help_text="npm package the CLI is installed from.")
    tmux_session = models.CharField(
        max_length=50, validators=[MinLengthValidator(1)], help_text="tmux session the agent runs in."
    )
    systemd_unit = models.CharField(
        max_length=80,
        blank=True,
        help_text="Instance of the max-agent@.service template (empty for the core Eidolons).",
    )
    status = models.CharField(
        max_length=20, choices=CliAgentStatusChoices.choices, default=CliAgentStatusChoices.NOT_INSTALLED
    )
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    reported_version = models.CharField(max_length=50, blank=True, help_text="Version the CLI last reported.")

    class Meta:
        ordering = ["eidolon__name", "kind"]
        verbose_name = "CLI agent"
        constraints = [
            models.UniqueConstraint(fields=["eidolon", "kind"], name="cliagent_one_per_kind_per_eidolon"),
        ]

    def __str__(self):
        return f"{self.eidolon.name}/{self.kind}"


class Signal(models.Model):
    """A message in an Eidolon's inbox: a PIPELINE_TRANSITION, a TASK-ASSIGNMENT, an ACK, ...

    The database is the inbox; the YAML file in ``<root>/<eidolon>_inbox/`` is an optional mirror
    for the file-based daemons. A signal is delivered (handed to one agent's poll) and then
    acknowledged; one delivered and not acknowledged within the visibility timeout is delivered again.
    """

    signal_type = models.CharField(max_length=30, choices=SignalTypeChoices.choices)
    sender = models.CharField(
        max_length=100, help_text="Who sent it: an Eidolon's name, 'portal', or a human's username."
    )
    recipient = models.ForeignKey(
        Eidolon, on_delete=models.CASCADE, related_name="signals", help_text="Whose inbox it is in."
    )
    agent = models.ForeignKey(
        CliAgent, on_delete=models.SET_NULL, null=True, blank=True, related_name="signals",
        help_text="One of the recipient's agents, when the signal is for that agent only.",
    )
    lead = models.ForeignKey(
        "leads.Lead", on_delete=models.CASCADE, null=True, blank=True, related_name="signals"
    )
    payload = models.JSONField(
        default=dict, blank=True,
        help_text="The seed's fields: from, to, lead_id, previous_stage, next_stage, summary, data_path.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True, help_text="Last time an agent's poll received it.")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    delivery_count = models.PositiveIntegerField(default=0, help_text="How many times it was delivered.")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["recipient", "created_at"],
                condition=models.Q(acknowledged_at__isnull=True),
                name="signal_unacked_by_recipient",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(signal_type__in=SignalTypeChoices.values), name="signal_type_valid"
            ),
        ]

    def __str__(self):
        return f"{self.signal_type} #{self.pk} {self.sender} -> {self.recipient_id}"


class ApiToken(models.Model):
    """A bearer token an Eidolon's agents use on the API.

    Shown once when issued; only its visible prefix and a keyed hash (HMAC-SHA256 with the secret
    key) are stored, so a copy of the database does not give anyone the token.
    """

    eidolon = models.ForeignKey(Eidolon, on_delete=models.CASCADE, related_name="api_tokens")
    agent = models.ForeignKey(
        CliAgent, on_delete=models.CASCADE, null=True, blank=True, related_name="api_tokens",
        help_text="Set to bind the token to one of the Eidolon's agents; empty: any of its agents.",
    )
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for, e.g. 'cor-daemon on CT202'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="The token's visible start.")
    digest = models.CharField(max_length=64, editable=False, help_text="HMAC-SHA256 of the whole token, hex.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.prefix}… ({self.eidolon_id})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


# SapWaves and the stale-agent episodes live in their own module (issue 9); importing them here
# makes them models of this app.
from .models_sapwaves import (  # noqa: E402, F401
    EidolonSapWavePause,
    SapWave,
    SapWaveRun,
    SapWaveTarget,
    StaleAgentEpisode,
)
