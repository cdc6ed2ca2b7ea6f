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
