"""Choices of the provisioning app."""

from django.db import models


class ContainerStatusChoices(models.TextChoices):
    """What the portal last knew of a container on Proxmox."""

    PLANNED = "planned", "Planned (not created yet)"
    STOPPED = "stopped", "Stopped"
    RUNNING = "running", "Running"
    MISSING = "missing", "Missing on the host"
    UNKNOWN = "unknown", "Unknown (not read from Proxmox yet)"


class RootChannelChoices(models.TextChoices):
    """How the portal acts as root@pam for what Proxmox refuses to API tokens.

    An API token is never root@pam: keyctl=1 and bind mounts (the plan's mp0) are refused to it.
    """

    NONE = "none", "None (token only: keyctl and bind mounts cannot be set)"
    TICKET = "ticket", "root@pam ticket login (password from the environment)"
    SSH = "ssh", "pct set as root over SSH"


class ExecutorChoices(models.TextChoices):
    """Where in-container scripts run (pct exec on the node)."""

    SSH = "ssh", "SSH to the node, then pct exec"
    SIMULATED = "simulated", "Simulated executor (the local Proxmox has no real containers)"


# --- The provisioning checklist ---------------------------------------------------------------
# Each step is defined once, in the step registry (provisioning/checklist.py): its label, kind,
# prerequisites, limits, script and handler. StepChoices are the database's names for the plan's
# ten steps, and must agree with the registry (a test checks it). The cell state machine is in
# provisioning/engine/transitions.py.


class StepChoices(models.TextChoices):
    """The ten rows of the provisioning plan's checklist, in the plan's order."""

    M365_ACCOUNT = "m365_account", "M365 Account"
    LXC_CREATED = "lxc_created", "LXC Created"
    BASE_CONFIG = "base_config", "Base Config"
    CLIS_INSTALLED = "clis_installed", "CLIs Installed"
    SYSTEMD_SETUP = "systemd_setup", "Systemd Setup"
    SIGNAL_DIR = "signal_dir", "Signal Dir"
    AUTH_COMPLETE = "auth_complete", "Auth Complete"
    REPO_CLONED = "repo_cloned", "Repo Cloned"
    SERVICES_RUNNING = "services_running", "Services Running"
    TEST_SIGNAL = "test_signal", "Test Signal"


class StepStateChoices(models.TextChoices):
    """Where one checklist cell is."""

    PENDING = "pending", "Pending"
    BLOCKED = "blocked", "Blocked"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class StepRunStateChoices(models.TextChoices):
    """One attempt at an automated step."""

    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    BLOCKED = "blocked", "Blocked"
    RECLAIMED = "reclaimed", "Reclaimed (ran past its time limit)"


class DriftKindChoices(models.TextChoices):
    """What the drift check found different between Proxmox and the record."""

    MISSING = "missing", "Container missing on the host"
    UNKNOWN = "unknown", "Unknown container on the host"
    MEMORY = "memory", "Memory changed outside the portal"
    CORES = "cores", "Cores changed outside the portal"
    HOSTNAME = "hostname", "Hostname differs"
    STATUS = "status", "Not running although provisioned"
