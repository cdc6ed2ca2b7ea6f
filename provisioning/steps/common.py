"""What the step handlers share: the host's Proxmox client and executor, the root@pam refusal,
running a step's script (without holding a database connection meanwhile)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone

from maxportal.kernel.db import release_connection
from maxportal.kernel.text import tail

from ..choices import RootChannelChoices
from ..engine.outcome import Outcome
from ..integrations.executors.base import ExecResult
from ..integrations.executors.factory import executor_for
from ..integrations.proxmox.client import ProxmoxClient
from ..models import Container, StepRun
from ..scripts import RenderedScript, StepScript, render_script

if TYPE_CHECKING:
    from .spec import StepSpec


def client_for(container: Container) -> ProxmoxClient:
    return ProxmoxClient.for_host(container.host)


def set_container_status(container: Container, status: str) -> None:
    Container.objects.filter(pk=container.pk).update(status=status, last_synced_at=timezone.now())


def root_refusal(container: Container, spec: StepSpec) -> str | None:
    """Why the step cannot run without a root@pam channel on the container's host, or None."""
    if not spec.root_needed(container) or container.host.root_channel != RootChannelChoices.NONE:
        return None
    return (
        f"{spec.label} needs root@pam for {spec.root_why}, and host {container.host.name} has no "
        f"root channel: an API token is never root@pam. Set the host's root channel to a ticket login or "
        f"SSH (admin, Proxmox hosts), then run the step again."
    )


def run_script(run: StepRun, spec: StepSpec, script: StepScript | None = None) -> tuple[RenderedScript, ExecResult]:
    """Render and run the step's script (or ``script``, a second one of the same step) where it
    runs; keeps exit code and output tail on the attempt."""
    container = run.step.container
    rendered = render_script(spec.slug, script or spec.script, container)
    executor = executor_for(container.host)
    # A script may run for many minutes: do not sit on a database connection (or a pool slot).
    release_connection()
    if rendered.target == "node":
        result = executor.run_on_node(script=rendered.text, timeout_s=rendered.timeout_s, simulation=spec.simulated)
    else:
        result = executor.run_in_container(vmid=container.vmid, script=rendered.text, timeout_s=rendered.timeout_s,
                                           simulation=spec.simulated)
    run.exit_code = result.exit_code
    run.output_tail = tail(result.output_tail)
    return rendered, result


def script_failure(run: StepRun, spec: StepSpec, rendered: RenderedScript, result: ExecResult) -> Outcome:
    where = "on the node" if rendered.target == "node" else f"in CT{run.step.container.vmid}"
    if result.timed_out:
        return Outcome.failed(
            f"The {spec.label} script timed out after {rendered.timeout_s} s {where}.", output=result.output_tail
        )
    return Outcome.failed(
        f"The {spec.label} script exited with {result.exit_code} {where}; see the output.", output=result.output_tail
    )
