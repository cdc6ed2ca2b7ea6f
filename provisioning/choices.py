"""Choices of the provisioning app."""

from django.db import models


class ContainerStatusChoices(models.TextChoices):
    """What the portal last knew of a container on Proxmox."""

    PLANNED = "planned", "Planned (not created yet)"
    STOPPED = "stopped", "Stopped"
    RUNNING = "running", "Running"
    MISSING = "missing", "Missing on the host"
    UNKNOWN = "unknown", "Unknown (not read from Proxmox yet)"
