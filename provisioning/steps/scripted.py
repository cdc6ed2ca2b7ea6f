"""The in-container steps: a rendered script run with ``pct exec`` on the node, its after-hook,
its preview, and how the simulated executor answers it. Signal Dir adds the mp0 bind mount
(root@pam) between its node script and a check from inside the container.

Safe to run twice: the scripts are idempotent and the bind mount is set to the same value again.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.utils import timezone

from eidolons.choices import CliAgentStatusChoices
from eidolons.models import CliAgent
from eidolons.selectors import agents_of
from maxportal.kernel.errors import DomainError

from ..engine.outcome import Outcome
from ..models import Container, StepRun
from ..scripts import MOUNT_POINT, SHARED_ROOT, RenderedScript, StepScript, parse_reported_versions, render_script
from .common import client_for, root_refusal, run_script, script_failure

if TYPE_CHECKING:
    from .spec import StepSpec

# The check of the signal directory's bind mount, run inside the container after the engine set
# mp0 through the root channel (not a checklist step of its own: the second half of Signal Dir).
SIGNAL_MOUNT_CHECK = StepScript("provisioning/scripts/signal_mount_check.sh", "container", 60, "Signal mount check")


def script_step(run: StepRun, spec: StepSpec) -> Outcome:
    rendered, result = run_script(run, spec)
    if not result.ok:
        return script_failure(run, spec, rendered, result)
    if spec.after_script:
        problem = spec.after_script(run, result)
        if problem:
            return Outcome.failed(problem, output=result.output_tail)
    return Outcome.done(result.output_tail)


def record_cli_versions(run: StepRun, result) -> str | None:
    """CLIs Installed is verified: each of the four CLIs must have reported a version."""
    versions = parse_reported_versions(result.output_tail)
    eidolon = getattr(run.step.container, "eidolon", None)
    if eidolon is None:
        return None
    missing = []
    for agent in agents_of(eidolon=eidolon):
        version = versions.get(agent.kind)
        if not version:
            missing.append(agent.kind)
            continue
        CliAgent.objects.filter(pk=agent.pk).update(
            reported_version=version[:50], status=CliAgentStatusChoices.INSTALLED
        )
    if missing:
        return f"The script ended well but these CLIs reported no version: {', '.join(missing)}."
    return None


def mark_agents_running(run: StepRun, result) -> str | None:
    eidolon = getattr(run.step.container, "eidolon", None)
    if eidolon is not None:
        agents_of(eidolon=eidolon).update(status=CliAgentStatusChoices.RUNNING, last_heartbeat_at=timezone.now())
    return None


def render_signal_mount_check(container: Container) -> RenderedScript:
    """The in-container check that the signal directory is mounted at /mnt/shared and writable."""
    return render_script("signal_dir", SIGNAL_MOUNT_CHECK, container)


def signal_dir(run: StepRun, spec: StepSpec) -> Outcome:
    """Inbox folders on the node, the mp0 bind mount (root@pam), then a check from inside."""
    container = run.step.container
    refusal = root_refusal(container, spec)
    if refusal:
        return Outcome.blocked(refusal)
    rendered, result = run_script(run, spec)
    if not result.ok:
        return script_failure(run, spec, rendered, result)
    output = result.output_tail
    client = client_for(container)
    client.bind_mount(container.vmid, SHARED_ROOT, MOUNT_POINT, slot="mp0")
    mp0 = str(client.get_config(container.vmid).get("mp0") or "")
    if not mp0.startswith(SHARED_ROOT) or f"mp={MOUNT_POINT}" not in mp0:
        return Outcome.failed(
            f"After setting the bind mount, CT{container.vmid}'s mp0 is {mp0 or 'empty'!r}; expected "
            f"{SHARED_ROOT},mp={MOUNT_POINT}.",
            output=output,
        )
    output += f"\nmp0: {mp0}\n"
    check, checked = run_script(run, spec, SIGNAL_MOUNT_CHECK)
    output += checked.output_tail
    if not checked.ok:
        return script_failure(run, spec, check, checked)
    return Outcome.done(output)


# --- What the page shows before a step runs --------------------------------------------------------


def preview(container: Container, spec: StepSpec) -> tuple[str, str]:
    try:
        rendered = render_script(spec.slug, spec.script, container)
    except DomainError as exc:
        return "Script (cannot render)", exc.message
    where = "on the node" if rendered.target == "node" else f"in CT{container.vmid} (pct exec)"
    return f"Script, run {where}, time limit {rendered.timeout_s} s", rendered.text


def preview_signal_dir(container: Container, spec: StepSpec) -> tuple[str, str]:
    title, text = preview(container, spec)
    if title.startswith("Script, run"):
        text += f"\n# then, as root@pam:\npct set {container.vmid} --mp0 {SHARED_ROOT},mp={MOUNT_POINT}"
    return title, text


# --- How the simulated executor answers (the local Proxmox has no containers) ---------------------

SIMULATED_CLI_VERSIONS = {"claude": "2.0.14", "gemini": "0.9.0", "codex": "0.46.0", "copilot": "0.0.339"}
_CLI_MARKER = re.compile(r"^# maxportal-cli: (\S+) (\S+)$", re.MULTILINE)


def simulated_cli_versions(script: str) -> list[str]:
    kinds = [kind for kind, _package in _CLI_MARKER.findall(script)] or list(SIMULATED_CLI_VERSIONS)
    return [f"MAXPORTAL_VERSION {kind} {SIMULATED_CLI_VERSIONS.get(kind, '1.0.0')}" for kind in kinds]


def simulated_units(script: str) -> list[str]:
    kinds = re.findall(r"max-agent@([a-z0-9_-]+)\.service", script)
    return [f"MAXPORTAL_UNIT max-agent@{kind}.service active" for kind in dict.fromkeys(kinds)]


def simulated_base_versions(script: str) -> list[str]:
    return ["MAXPORTAL_VERSION node 20.19.5", "MAXPORTAL_VERSION npm 10.8.2", "MAXPORTAL_VERSION python3 3.11.2"]
