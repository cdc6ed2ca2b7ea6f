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
# The plan's ten rows, their kinds, prerequisites and the moves a step may make live here, as
# data, in one place: services.py enforces them for every interface (page, admin, commands, tasks).


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


STEP_ORDER: list[str] = [s.value for s in StepChoices]

# Done by a person: Christian creates the mailbox; the CLI logins are interactive OAuth.
MANUAL_STEPS: frozenset[str] = frozenset({StepChoices.M365_ACCOUNT, StepChoices.AUTH_COMPLETE})
AUTOMATED_STEPS: list[str] = [s for s in STEP_ORDER if s not in MANUAL_STEPS]

# What must be done before a step may start (plan phases 2-6 and the master plan's dependencies).
# The logins (auth complete) are attested by a person whenever they did them, so the manual
# steps wait for nothing; the automated ones wait for what they build on.
STEP_PREREQUISITES: dict[str, tuple[str, ...]] = {
    StepChoices.M365_ACCOUNT: (),
    StepChoices.LXC_CREATED: (),
    StepChoices.BASE_CONFIG: (StepChoices.LXC_CREATED,),
    StepChoices.CLIS_INSTALLED: (StepChoices.BASE_CONFIG,),
    StepChoices.SYSTEMD_SETUP: (StepChoices.CLIS_INSTALLED,),
    StepChoices.SIGNAL_DIR: (StepChoices.BASE_CONFIG,),
    StepChoices.AUTH_COMPLETE: (),
    StepChoices.REPO_CLONED: (StepChoices.BASE_CONFIG,),
    StepChoices.SERVICES_RUNNING: (
        StepChoices.SYSTEMD_SETUP,
        StepChoices.SIGNAL_DIR,
        StepChoices.AUTH_COMPLETE,
        StepChoices.REPO_CLONED,
    ),
    StepChoices.TEST_SIGNAL: (StepChoices.SERVICES_RUNNING,),
}

# Steps that act as root@pam on the host: Proxmox refuses keyctl=1 and bind mounts to API tokens.
STEPS_NEEDING_ROOT: dict[str, str] = {
    StepChoices.LXC_CREATED: "features keyctl=1",
    StepChoices.SIGNAL_DIR: "the mp0 bind mount of the shared signal folder",
}

# How long one attempt may run before the reaper takes it back (seconds). A killed worker's step
# is reclaimed after this; each is well above what the step takes on a real node.
STEP_TIME_LIMITS: dict[str, int] = {
    StepChoices.M365_ACCOUNT: 0,
    StepChoices.LXC_CREATED: 900,
    StepChoices.BASE_CONFIG: 1800,
    StepChoices.CLIS_INSTALLED: 1200,
    StepChoices.SYSTEMD_SETUP: 300,
    StepChoices.SIGNAL_DIR: 300,
    StepChoices.AUTH_COMPLETE: 0,
    StepChoices.REPO_CLONED: 900,
    StepChoices.SERVICES_RUNNING: 300,
    StepChoices.TEST_SIGNAL: 300,
}


class StepStateChoices(models.TextChoices):
    """Where one checklist cell is."""

    PENDING = "pending", "Pending"
    BLOCKED = "blocked", "Blocked"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


# The allowed moves of a cell. Blocked means the engine refused to run it for a reason outside the
# checklist (capacity, no root@pam channel): fix that, then run it again.
STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    StepStateChoices.PENDING: frozenset({"running", "done", "blocked", "skipped"}),
    StepStateChoices.BLOCKED: frozenset({"running", "done", "pending", "skipped"}),
    StepStateChoices.RUNNING: frozenset({"done", "failed", "blocked"}),
    StepStateChoices.FAILED: frozenset({"running", "done", "pending", "skipped"}),
    StepStateChoices.DONE: frozenset({"pending"}),
    StepStateChoices.SKIPPED: frozenset({"pending"}),
}
# Moves back from a settled state lose a fact someone relied on: they need a written reason.
STEP_MOVES_NEEDING_REASON: frozenset[tuple[str, str]] = frozenset(
    {("done", "pending"), ("skipped", "pending"), ("pending", "skipped"), ("failed", "skipped"),
     ("blocked", "skipped")}
)
# A step may start (run or tick) from these.
STEP_STARTABLE_STATES: frozenset[str] = frozenset({"pending", "blocked", "failed"})
# States that count as "prerequisite met".
STEP_SATISFIED_STATES: frozenset[str] = frozenset({"done", "skipped"})


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
