"""What each automated step does, one turn at a time (called by ``services.step_run_advance``).

A handler gets the running attempt, does one short piece of work, and returns an ``Outcome``:
wait (poll again soon), done (verified), failed or blocked. It keeps what the next turn needs on the
attempt (``phase``, ``upid``, ``data``); the service saves it. Handlers never wait on Proxmox
in-process: a UPID is checked once per turn and the turn ends.

Every handler is safe to run twice: the create step looks for the container before creating it, the
in-container scripts are idempotent, the bind mount is set to the same value again.
"""

from __future__ import annotations

from django.utils import timezone

from .choices import ContainerStatusChoices, ExecutorChoices, StepChoices
from .models import Container, StepRun
from .services import Outcome, _tail, capacity_refusal
from .services import _root_refusal as root_refusal


def _client(container: Container):
    from .proxmox import ProxmoxClient

    return ProxmoxClient.for_host(container.host)


def _task_outcome(run: StepRun, status, what: str) -> Outcome | None:
    """None while the Proxmox task runs; a failed Outcome if it ended badly; else ``done``-ish None."""
    if status.running:
        return Outcome.wait()
    log = status.log_tail if isinstance(status.log_tail, str) else "\n".join(status.log_tail or [])
    run.output_tail = _tail(f"{run.output_tail}\n{what}: {log}".strip())
    if not status.ok:
        return Outcome.failed(
            f"Proxmox task {what} ended with: {status.exitstatus} (UPID {status.upid}).", output=run.output_tail
        )
    return None


def _set_status(container: Container, status: str) -> None:
    Container.objects.filter(pk=container.pk).update(status=status, last_synced_at=timezone.now())


def _hostname_of(found: dict) -> str:
    return str(found.get("name") or found.get("hostname") or "")


# --- LXC Created: create (or adopt), then start, each a Proxmox task ------------------------------


def lxc_created(run: StepRun) -> Outcome:
    container = run.step.container
    client = _client(container)
    if run.phase == "begin":
        refusal = capacity_refusal(container) or root_refusal(container, StepChoices.LXC_CREATED)
        if refusal:
            return Outcome.blocked(refusal)
        # A create whose answer was lost (timeout, killed worker) may have succeeded: look first.
        found = client.find_container(container.vmid)
        if found is not None:
            return _adopt(run, container, found, client)
        from .proxmox import ProxmoxContainerExists

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
        _set_status(container, ContainerStatusChoices.STOPPED)
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


def _adopt(run: StepRun, container: Container, found: dict, client) -> Outcome:
    hostname = _hostname_of(found)
    if hostname and hostname != container.hostname:
        return Outcome.failed(
            f"vmid {container.vmid} is taken on node {container.host.node} by another container, '{hostname}' "
            f"(the record says '{container.hostname}'). Pick another vmid for {container.hostname}, or remove "
            f"'{hostname}' from the node, then run the step again."
        )
    run.data["adopted"] = True
    run.output_tail = _tail(
        (run.output_tail + "\n" if run.output_tail else "")
        + f"CT{container.vmid} '{hostname or container.hostname}' exists on {container.host.node}: adopted."
    )
    run.phase = "features"
    return _root_features(run, container, client)


def _root_features(run: StepRun, container: Container, client) -> Outcome:
    """keyctl=1 is refused to tokens at create: set it now through the host's root@pam channel."""
    features = client.root_features(container)
    if features:
        client.set_config(container.vmid, **features)
        run.output_tail = _tail(run.output_tail + f"\nfeatures {features['features']} set as root@pam.")
    run.phase = "start"
    return _start(run, container, client)


def _start(run: StepRun, container: Container, client) -> Outcome:
    state = client.current_status(container.vmid).get("status")
    if state == "running":
        return _verify_running(run, container, client)
    run.upid = client.start(container.vmid)
    run.phase = "wait_start"
    return Outcome.wait()


def _verify_running(run: StepRun, container: Container, client) -> Outcome:
    state = client.current_status(container.vmid).get("status")
    if state != "running":
        return Outcome.failed(f"CT{container.vmid} was started but Proxmox reports it {state}.")
    config = client.get_config(container.vmid)
    if config.get("hostname") and config["hostname"] != container.hostname:
        return Outcome.failed(
            f"CT{container.vmid} runs with hostname '{config['hostname']}', the record says '{container.hostname}'."
        )
    _set_status(container, ContainerStatusChoices.RUNNING)
    return Outcome.done(run.output_tail + f"\nCT{container.vmid} is running on {container.host.node}.")


# --- In-container steps: a rendered script run with pct exec on the node -------------------------


def _run_script(run: StepRun):
    from .executors import executor_for
    from .scripts import render_step_script

    container = run.step.container
    rendered = render_step_script(run.step.step, container)
    executor = executor_for(container.host)
    _release_database_connection()
    if rendered.target == "node":
        result = executor.run_on_node(script=rendered.text, timeout_s=rendered.timeout_s)
    else:
        result = executor.run_in_container(vmid=container.vmid, script=rendered.text, timeout_s=rendered.timeout_s)
    run.exit_code = result.exit_code
    run.output_tail = _tail(result.output_tail)
    return rendered, result


def _release_database_connection() -> None:
    """A script may run for many minutes: do not sit on a database connection (or a pool slot)
    meanwhile; the next query opens one again. Inside a transaction (tests) it stays."""
    from django.db import connection

    if not connection.in_atomic_block:
        connection.close()


def _script_failure(run: StepRun, rendered, result) -> Outcome:
    where = "on the node" if rendered.target == "node" else f"in CT{run.step.container.vmid}"
    if result.timed_out:
        return Outcome.failed(
            f"The {StepChoices(run.step.step).label} script timed out after {rendered.timeout_s} s {where}.",
            output=result.output_tail,
        )
    return Outcome.failed(
        f"The {StepChoices(run.step.step).label} script exited with {result.exit_code} {where}; see the output.",
        output=result.output_tail,
    )


def script_step(run: StepRun) -> Outcome:
    rendered, result = _run_script(run)
    if not result.ok:
        return _script_failure(run, rendered, result)
    after = AFTER_SCRIPT.get(run.step.step)
    if after:
        problem = after(run, result)
        if problem:
            return Outcome.failed(problem, output=result.output_tail)
    return Outcome.done(result.output_tail)


def _record_cli_versions(run: StepRun, result) -> str | None:
    """CLIs Installed is verified: each of the four CLIs must have reported a version."""
    from eidolons.choices import CliAgentStatusChoices
    from eidolons.models import CliAgent

    from .scripts import parse_reported_versions

    versions = parse_reported_versions(result.output_tail)
    eidolon = getattr(run.step.container, "eidolon", None)
    if eidolon is None:
        return None
    missing = []
    for agent in CliAgent.objects.filter(eidolon=eidolon):
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


def _mark_agents_running(run: StepRun, result) -> str | None:
    from eidolons.choices import CliAgentStatusChoices
    from eidolons.models import CliAgent

    eidolon = getattr(run.step.container, "eidolon", None)
    if eidolon is not None:
        CliAgent.objects.filter(eidolon=eidolon).update(
            status=CliAgentStatusChoices.RUNNING, last_heartbeat_at=timezone.now()
        )
    return None


AFTER_SCRIPT = {
    StepChoices.CLIS_INSTALLED: _record_cli_versions,
    StepChoices.SERVICES_RUNNING: _mark_agents_running,
}


# --- Signal Dir: inbox folders on the node, then the mp0 bind mount (root@pam) -------------------


def signal_dir(run: StepRun) -> Outcome:
    """Inbox folders on the node, the mp0 bind mount (root@pam), then a check from inside."""
    from .executors import executor_for
    from .scripts import MOUNT_POINT, SHARED_ROOT, render_signal_mount_check

    container = run.step.container
    refusal = root_refusal(container, StepChoices.SIGNAL_DIR)
    if refusal:
        return Outcome.blocked(refusal)
    rendered, result = _run_script(run)
    if not result.ok:
        return _script_failure(run, rendered, result)
    output = result.output_tail
    client = _client(container)
    client.bind_mount(container.vmid, SHARED_ROOT, MOUNT_POINT, slot="mp0")
    mp0 = str(client.get_config(container.vmid).get("mp0") or "")
    if not mp0.startswith(SHARED_ROOT) or f"mp={MOUNT_POINT}" not in mp0:
        return Outcome.failed(
            f"After setting the bind mount, CT{container.vmid}'s mp0 is {mp0 or 'empty'!r}; expected "
            f"{SHARED_ROOT},mp={MOUNT_POINT}.",
            output=output,
        )
    output += f"\nmp0: {mp0}\n"
    check = render_signal_mount_check(container)
    checked = executor_for(container.host).run_in_container(
        vmid=container.vmid, script=check.text, timeout_s=check.timeout_s
    )
    run.exit_code = checked.exit_code
    output += checked.output_tail
    if not checked.ok:
        return _script_failure(run, check, checked)
    return Outcome.done(output)


# --- Test Signal: a TEST signal to the Eidolon, done when it acknowledges --------------------------


def test_signal(run: StepRun) -> Outcome:
    from eidolons.models import Signal

    container = run.step.container
    eidolon = getattr(container, "eidolon", None)
    if eidolon is None:
        return Outcome.failed(f"CT{container.vmid} houses no Eidolon: there is nobody to send a TEST signal to.")
    if run.phase == "begin":
        from eidolons.services import signal_send

        signal = signal_send(
            signal_type="TEST",
            sender="portal",
            recipient=eidolon,
            payload={"summary": f"Provisioning test signal for CT{container.vmid}", "run": run.pk},
        )
        run.data["signal_id"] = signal.pk
        run.phase = "await_ack"
        run.output_tail = f"TEST signal #{signal.pk} sent to {eidolon.name}'s inbox."
        return Outcome.wait()
    signal = Signal.objects.filter(pk=run.data.get("signal_id")).first()
    if signal is None:
        return Outcome.failed("The TEST signal disappeared from the inbox before it was acknowledged.")
    if signal.acknowledged_at:
        return Outcome.done(run.output_tail + f"\nAcknowledged by {eidolon.name} at {signal.acknowledged_at:%H:%M:%S}.")
    if container.host.executor == ExecutorChoices.SIMULATED:
        # The local Proxmox has no real containers, so no real agent reads the inbox: the simulated
        # executor's agent does, and acknowledges as the Eidolon would (one poll later).
        from eidolons.services import signal_acknowledge

        signal_acknowledge(signal_id=signal.pk, eidolon=eidolon)
        run.output_tail += f"\n(simulated executor) {eidolon.name}'s agent acknowledged signal #{signal.pk}."
    return Outcome.wait()


HANDLERS = {
    StepChoices.LXC_CREATED: lxc_created,
    StepChoices.BASE_CONFIG: script_step,
    StepChoices.CLIS_INSTALLED: script_step,
    StepChoices.SYSTEMD_SETUP: script_step,
    StepChoices.SIGNAL_DIR: signal_dir,
    StepChoices.REPO_CLONED: script_step,
    StepChoices.SERVICES_RUNNING: script_step,
    StepChoices.TEST_SIGNAL: test_signal,
}
