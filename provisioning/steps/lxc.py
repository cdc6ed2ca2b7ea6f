"""LXC Created: check capacity and root@pam, create (or adopt) the container, set keyctl as
root@pam, start it, check it runs. Each Proxmox task is followed one reading per turn.

Safe to run twice: a create whose answer was lost may have succeeded, so the handler looks for
the vmid before creating, and adopts a container whose hostname is the record's.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from maxportal.kernel.text import tail

from ..choices import ContainerStatusChoices
from ..engine.outcome import Outcome
from ..integrations.proxmox.client import ProxmoxClient
from ..integrations.proxmox.errors import ProxmoxContainerExists
from ..integrations.proxmox.params import create_params, root_features
from ..models import Container, StepRun
from ..selectors import capacity_refusal
from .common import client_for, root_refusal, set_container_status

if TYPE_CHECKING:
    from .spec import StepSpec


def _task_outcome(run: StepRun, status, what: str) -> Outcome | None:
    """A wait while the Proxmox task runs; a failed Outcome if it ended badly; None when it ended well."""
    if status.running:
        return Outcome.wait()
    log = status.log_tail if isinstance(status.log_tail, str) else "\n".join(status.log_tail or [])
    run.output_tail = tail(f"{run.output_tail}\n{what}: {log}".strip())
    if not status.ok:
        return Outcome.failed(
            f"Proxmox task {what} ended with: {status.exitstatus} (UPID {status.upid}).", output=run.output_tail
        )
    return None


def _hostname_of(found: dict) -> str:
    return str(found.get("name") or found.get("hostname") or "")


def lxc_created(run: StepRun, spec: StepSpec) -> Outcome:
    container = run.step.container
    client = client_for(container)
    if run.phase == "begin":
        refusal = capacity_refusal(container) or root_refusal(container, spec)
        if refusal:
            return Outcome.blocked(refusal)
        # A create whose answer was lost (timeout, killed worker) may have succeeded: look first.
        found = client.find_container(container.vmid)
        if found is not None:
            return _adopt(run, container, found, client)
        try:
            run.upid = client.create_container(container)
        except ProxmoxContainerExists:
            found = client.find_container(container.vmid)
            if found is None:
                return Outcome.failed(
                    f"Proxmox says CT{container.vmid} already exists on node {container.host.node}, but it is not "
                    "listed: check the node (a half-created or locked container?), then run the step again."
                )
            return _adopt(run, container, found, client)
        run.phase = "wait_create"
        run.data["created"] = True
        return Outcome.wait()
    if run.phase == "wait_create":
        failed = _task_outcome(run, client.task_status(run.upid), "create")
        if failed:
            return failed
        set_container_status(container, ContainerStatusChoices.STOPPED)
        run.phase = "features"
        return _root_features(run, container, client)
    if run.phase == "features":
        return _root_features(run, container, client)
    if run.phase == "start":
        return _start(run, container, client)
    if run.phase == "wait_start":
        failed = _task_outcome(run, client.task_status(run.upid), "start")
        if failed:
            return failed
        return _verify_running(run, container, client)
    return Outcome.failed(f"Unknown phase {run.phase!r} of LXC Created.")


def _adopt(run: StepRun, container: Container, found: dict, client: ProxmoxClient) -> Outcome:
    hostname = _hostname_of(found)
    if hostname and hostname != container.hostname:
        return Outcome.failed(
            f"vmid {container.vmid} is taken on node {container.host.node} by another container, '{hostname}' "
            f"(the record says '{container.hostname}'). Pick another vmid for {container.hostname}, or remove "
            f"'{hostname}' from the node, then run the step again."
        )
    run.data["adopted"] = True
    run.output_tail = tail(
        (run.output_tail + "\n" if run.output_tail else "")
        + f"CT{container.vmid} '{hostname or container.hostname}' exists on {container.host.node}: adopted."
    )
    run.phase = "features"
    return _root_features(run, container, client)


def _root_features(run: StepRun, container: Container, client: ProxmoxClient) -> Outcome:
    """keyctl=1 is refused to tokens at create: set it now through the host's root@pam channel."""
    features = client.root_features(container)
    if features:
        client.set_config(container.vmid, **features)
        run.output_tail = tail(run.output_tail + f"\nfeatures {features['features']} set as root@pam.")
    run.phase = "start"
    return _start(run, container, client)


def _start(run: StepRun, container: Container, client: ProxmoxClient) -> Outcome:
    state = client.current_status(container.vmid).get("status")
    if state == "running":
        return _verify_running(run, container, client)
    run.upid = client.start(container.vmid)
    run.phase = "wait_start"
    return Outcome.wait()


def _verify_running(run: StepRun, container: Container, client: ProxmoxClient) -> Outcome:
    state = client.current_status(container.vmid).get("status")
    if state != "running":
        return Outcome.failed(f"CT{container.vmid} was started but Proxmox reports it {state}.")
    config = client.get_config(container.vmid)
    if config.get("hostname") and config["hostname"] != container.hostname:
        return Outcome.failed(
            f"CT{container.vmid} runs with hostname '{config['hostname']}', the record says '{container.hostname}'."
        )
    set_container_status(container, ContainerStatusChoices.RUNNING)
    return Outcome.done(run.output_tail + f"\nCT{container.vmid} is running on {container.host.node}.")


def preview(container: Container, spec: StepSpec) -> tuple[str, str]:
    """The Proxmox API calls of the step, as the equivalent pct commands."""
    params = create_params(container)
    vmid = params.pop("vmid")
    template = params.pop("ostemplate")
    parts = ["pct", "create", str(vmid), template]
    for key, value in params.items():
        parts += [f"--{key}", str(value)]
    lines = [shlex.join(parts[:4])] + [shlex.join(parts[i:i + 2]) for i in range(4, len(parts), 2)]
    text = " \\\n    ".join(lines)
    features = root_features(container)
    if features:
        text += (f"\n# then, as root@pam (an API token may not set keyctl):\n"
                 f"pct set {vmid} --features {features['features']}")
    text += f"\npct start {vmid}"
    return "Proxmox API calls (as the equivalent pct commands)", text
