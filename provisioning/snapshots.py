"""Snapshots of a container, taken through Proxmox on a person's request."""

from __future__ import annotations

from django.utils import timezone

from maxportal.kernel.actors import Actor
from maxportal.kernel.errors import NotAllowed

from .integrations.proxmox.client import ProxmoxClient
from .integrations.proxmox.errors import ProxmoxError
from .models import Container


def container_snapshot(*, container: Container, actor: Actor, name: str = "") -> str:
    """Start a Proxmox snapshot of the container; returns the task's UPID.

    Proxmox cannot snapshot a container with a bind mount (the plan's mp0 signal folder): the
    client refuses before trying, and the refusal says what to do instead.
    """
    name = name or f"portal-{timezone.now():%Y%m%d-%H%M%S}"
    try:
        return ProxmoxClient.for_host(container.host).create_snapshot(
            container.vmid, name, description=f"taken from maxportal by {actor.label}"
        )
    except ProxmoxError as exc:
        raise NotAllowed(exc.message) from None
