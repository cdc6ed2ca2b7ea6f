"""Choices of the eidolons app: the pipeline's stages, agent kinds and their states."""

from django.db import models


class PipelineStage(models.TextChoices):
    """The seven stages of the MAX Pipeline, in order (ClientState.current_stage)."""

    LEAD_GEN = "LeadGen", "Lead generation"
    FIRST_RESPONDER = "FirstResponder", "First responder"
    SCOPING = "Scoping", "Scoping"
    ORCHESTRA = "Orchestra", "Orchestra (mockups)"
    CLOSER = "Closer", "Closer"
    ONBOARDING = "Onboarding", "Onboarding"
    DELIVERY_PM = "DeliveryPM", "Delivery PM"


PIPELINE_ORDER = list(PipelineStage)

# The per-lead artifact folder of each stage, as the architecture synthesis lays them out.
STAGE_FOLDERS = {
    PipelineStage.LEAD_GEN: "stage-1-leadgen",
    PipelineStage.FIRST_RESPONDER: "stage-2-first",
    PipelineStage.SCOPING: "stage-3-scoping",
    PipelineStage.ORCHESTRA: "stage-4-mockup",
    PipelineStage.CLOSER: "stage-5-closer",
    PipelineStage.ONBOARDING: "stage-6-onboarding",
    PipelineStage.DELIVERY_PM: "stage-7-delivery",
}


def next_stage(stage):
    """The stage after ``stage``, or None after the last one (DeliveryPM)."""
    index = PIPELINE_ORDER.index(PipelineStage(stage))
    return PIPELINE_ORDER[index + 1] if index + 1 < len(PIPELINE_ORDER) else None


class CliAgentKindChoices(models.TextChoices):
    """The four CLI coding agents every Eidolon runs: the inner voices of one mind."""

    CLAUDE = "claude", "Claude Code"
    GEMINI = "gemini", "Gemini CLI"
    CODEX = "codex", "Codex"
    COPILOT = "copilot", "GitHub Copilot"


# npm package each kind is installed from (provisioning plan, phase 4).
CLI_AGENT_NPM_PACKAGES = {
    CliAgentKindChoices.CLAUDE: "@anthropic-ai/claude-code",
    CliAgentKindChoices.GEMINI: "@google/gemini-cli",
    CliAgentKindChoices.CODEX: "@openai/codex",
    CliAgentKindChoices.COPILOT: "@github/copilot",
}


class CliAgentStatusChoices(models.TextChoices):
    NOT_INSTALLED = "not_installed", "Not installed"
    INSTALLED = "installed", "Installed"
    RUNNING = "running", "Running"
    IDLE = "idle", "Idle"
    STOPPED = "stopped", "Stopped"
    ERROR = "error", "Error"


class M365AccountStateChoices(models.TextChoices):
    """Where a mailbox is on its way from a request to Christian to a verified account."""

    REQUESTED = "requested", "Requested"
    CREATED = "created", "Created"
    LICENSED = "licensed", "Licensed"
    VERIFIED = "verified", "Verified"


class SignalTypeChoices(models.TextChoices):
    """The kinds of signal one Eidolon (or the portal) drops in another's inbox (master plan, synthesis)."""

    PIPELINE_TRANSITION = "PIPELINE_TRANSITION", "Pipeline transition"
    TASK_ASSIGNMENT = "TASK_ASSIGNMENT", "Task assignment"
    TASK_RESPONSE = "TASK_RESPONSE", "Task response"
    ACK = "ACK", "Acknowledgement"
    ESCALATION = "ESCALATION", "Escalation"
    SAPWAVE = "SAPWAVE", "SapWave"
    TEST = "TEST", "Test"


# What an Eidolon's agents may send themselves through POST /api/v1/signals; the others are
# written by the portal (handoffs, escalations, SapWaves, the provisioning test signal).
SIGNAL_TYPES_AGENTS_SEND = (
    SignalTypeChoices.TASK_ASSIGNMENT,
    SignalTypeChoices.TASK_RESPONSE,
    SignalTypeChoices.ACK,
)
