"""The executors: SSH to a real OpenSSH server on loopback, and the simulated one.

The SSH tests run /usr/sbin/sshd on 127.0.0.1 (tests/provisioning/ssh_server.py) with a fake
``pct`` first on the session's PATH, so they prove what travels over SSH and what comes back.
"""

import contextlib
import os
import time

import pytest
from django.test import override_settings

from maxportal.kernel.errors import DomainError
from provisioning.checklist import STEPS
from provisioning.choices import ExecutorChoices, RootChannelChoices
from provisioning.integrations.executors.base import OUTPUT_TAIL_LINES, ExecResult, tail_text
from provisioning.integrations.executors.errors import (
    ExecutorAuthError,
    ExecutorConfigError,
    ExecutorConnectionError,
    ExecutorError,
    ExecutorHostKeyError,
)
from provisioning.integrations.executors.factory import executor_for, pct_set_as_root, pct_set_command
from provisioning.integrations.executors.simulated import SimulatedExecutor
from provisioning.integrations.executors.ssh import SshExecutor
from provisioning.models import ProxmoxHost
from provisioning.scripts import parse_reported_versions

from .ssh_server import ssh_server  # noqa: F401  (the fixture)


def make_host(**overrides) -> ProxmoxHost:
    values = {
        "name": "ax42", "api_url": "https://127.0.0.1:8006", "node": "ax42",
        "cpu_cores": 8, "cpu_threads": 16, "memory_mb": 65536, "storage_gb": 1024,
        "executor": ExecutorChoices.SSH, "root_channel": RootChannelChoices.SSH,
    }
    values.update(overrides)
    return ProxmoxHost(**values)


@pytest.fixture
def ssh_host(ssh_server):  # noqa: F811
    return make_host(
        ssh_host=ssh_server.host, ssh_port=ssh_server.port, ssh_user=ssh_server.user,
        ssh_key_file=str(ssh_server.user_key), ssh_known_hosts_file=str(ssh_server.known_hosts),
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waits for its parent; it runs nothing any more.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# --- SSH transport -----------------------------------------------------------------------------


def test_script_travels_on_stdin_to_pct_exec_and_exit_code_and_output_come_back(ssh_server, ssh_host):  # noqa: F811
    # Given a script that names the container pct was asked for, writes to both streams and fails
    script = (
        'echo "inside CT${FAKE_PCT_VMID}"\n'
        "echo 'stdin-only-marker: $((6 * 7))'\n"
        "echo to-stderr >&2\n"
        "exit 3\n"
    )
    before = len(ssh_server.pct_calls())

    # When it runs in CT201 over SSH
    result = SshExecutor(ssh_host).run_in_container(vmid=201, script=script, timeout_s=30)

    # Then pct exec 201 -- ... bash -s ran it (read from stdin), and its exit code and both streams came back
    assert result.exit_code == 3 and not result.ok and not result.timed_out
    assert "inside CT201" in result.output_tail
    assert "stdin-only-marker: $((6 * 7))" in result.output_tail, "the script must not be expanded on its way"
    assert "to-stderr" in result.output_tail
    calls = ssh_server.pct_calls()[before:]
    assert len(calls) == 1, calls
    argv = calls[0].split()[1:]
    assert argv[:3] == ["exec", "201", "--"], argv
    assert argv[-2:] == ["bash", "-s"], argv
    assert "stdin-only-marker" not in calls[0], "the script must travel on stdin, not on the command line"


def test_successful_script_is_ok_and_large_scripts_arrive_whole(ssh_host):
    # Given a 300 KB script whose last line is the only one that prints
    script = "#" + "x" * 99 + "\n"
    script = script * 3000 + "echo last-line-ran\n"

    # When it runs in a container
    result = SshExecutor(ssh_host).run_in_container(vmid=202, script=script, timeout_s=30)

    # Then all of it arrived and ran
    assert result.ok, result
    assert result.output_tail.strip() == "last-line-ran"
    assert result.duration_s > 0


def test_output_is_cut_to_its_tail(ssh_host):
    # Given a script that prints far more than a person reads
    script = "for i in $(seq 1 5000); do echo line-$i; done\n"

    # When it runs
    result = SshExecutor(ssh_host).run_in_container(vmid=203, script=script, timeout_s=30)

    # Then only the last lines are kept, ending with the last one
    lines = result.output_tail.splitlines()
    assert len(lines) == OUTPUT_TAIL_LINES
    assert lines[-1] == "line-5000" and lines[0] == f"line-{5000 - OUTPUT_TAIL_LINES + 1}"


def test_hanging_script_is_cut_at_its_timeout_and_killed(ssh_server, ssh_host, tmp_path):  # noqa: F811
    # Given a script that would hang for a minute, telling us its pid first
    pid_file = tmp_path / "pid"
    script = f"echo $$ > {pid_file}\necho started\nsleep 60\necho never\n"

    # When it runs with a 1.5 s limit
    started = time.monotonic()
    result = SshExecutor(ssh_host).run_in_container(vmid=204, script=script, timeout_s=1.5)
    elapsed = time.monotonic() - started

    # Then the call comes back soon after the limit, says it timed out, and the script is gone
    assert result.timed_out and not result.ok, result
    assert 1.4 <= elapsed < 10, elapsed
    assert "started" in result.output_tail and "never" not in result.output_tail
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(pid), "the timed-out script must be killed on the node"


def test_client_gives_up_when_the_node_does_not_let_go(ssh_host, tmp_path):
    # Given a script that leaves a process holding the session's output open beyond its limit,
    # out of reach of the node's timeout (its own session), and a short client grace
    pid_file = tmp_path / "orphan.pid"
    script = f"setsid bash -c 'echo $$ > {pid_file}; trap \"\" TERM HUP; sleep 8' &\necho detached\nsleep 60\n"

    # When it runs with a 1 s limit
    with override_settings(MAXPORTAL_SSH_TIMEOUT_GRACE=1):
        started = time.monotonic()
        result = SshExecutor(ssh_host).run_on_node(script=script, timeout_s=1)
        elapsed = time.monotonic() - started

    # Then the client cuts the call at limit + grace and says so
    try:
        assert result.timed_out and not result.ok, result
        assert 1.9 <= elapsed < 5, elapsed
        assert "no answer within 1s" in result.output_tail
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), 9)


def test_run_on_node_runs_bash_without_pct(ssh_server, ssh_host):  # noqa: F811
    # Given a node script
    before = len(ssh_server.pct_calls())

    # When it runs on the node
    result = SshExecutor(ssh_host).run_on_node(script='echo "node says $((1 + 1))"\nexit 0\n', timeout_s=30)

    # Then bash ran it on the node itself, not through pct
    assert result.ok and "node says 2" in result.output_tail
    assert ssh_server.pct_calls()[before:] == []


def test_unknown_host_key_is_refused(ssh_server, ssh_host, tmp_path):  # noqa: F811
    # Given a known_hosts file that does not know the node
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    ssh_host.ssh_known_hosts_file = str(empty)
    before = len(ssh_server.pct_calls())

    # When a script is to run, then the connection is refused before anything runs
    with pytest.raises(ExecutorHostKeyError, match="not in"):
        SshExecutor(ssh_host).run_in_container(vmid=201, script="echo hi\n", timeout_s=10)
    assert ssh_server.pct_calls()[before:] == []
    assert empty.read_text() == "", "an unknown key must never be learned"


def test_changed_host_key_is_refused(ssh_server, ssh_host):  # noqa: F811
    # Given a known_hosts file pinning another key for the node's address
    ssh_host.ssh_known_hosts_file = str(ssh_server.other_known_hosts)

    # Then the connection is refused with a message that says the key does not match
    with pytest.raises(ExecutorHostKeyError, match="does not match"):
        SshExecutor(ssh_host).run_on_node(script="echo hi\n", timeout_s=10)


def test_key_the_node_does_not_authorize_is_refused(ssh_server, ssh_host):  # noqa: F811
    # Given a private key that is not in the node's authorized_keys
    ssh_host.ssh_key_file = str(ssh_server.other_key)

    # Then the node refuses it and the error says what to do, not to retry
    with pytest.raises(ExecutorAuthError, match="authorized_keys") as caught:
        SshExecutor(ssh_host).run_on_node(script="echo hi\n", timeout_s=10)
    assert caught.value.transient is False


def test_missing_key_file_is_a_configuration_error(ssh_host, tmp_path):
    ssh_host.ssh_key_file = str(tmp_path / "no-such-key")
    with pytest.raises(ExecutorConfigError, match="no-such-key of host ax42 is missing or unreadable"):
        SshExecutor(ssh_host).run_on_node(script="echo hi\n", timeout_s=5)


def test_unreachable_node_is_a_transient_connection_error(ssh_host):
    # Given a port nothing listens on (bound, never listening, so no other test can take it)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        ssh_host.ssh_port = sock.getsockname()[1]
        # Then the executor says it cannot reach the node, and that trying again may help
        with pytest.raises(ExecutorConnectionError, match="Cannot reach") as caught:
            SshExecutor(ssh_host).run_on_node(script="echo hi\n", timeout_s=5)
    assert caught.value.transient is True


def test_ssh_executor_names_the_missing_settings():
    # Given a host set to SSH without its SSH fields, then building its executor says what to set
    with pytest.raises(ExecutorConfigError, match="ssh_host, ssh_key_file, ssh_known_hosts_file"):
        executor_for(make_host())


def test_pct_set_as_root_runs_pct_set_over_ssh(ssh_server, ssh_host):  # noqa: F811
    # Given a host whose root channel is pct set over SSH
    before = len(ssh_server.pct_calls())

    # When the bind mount of the signal directory is set as root
    result = pct_set_as_root(ssh_host, 201, mp0="/var/lib/vz/shared,mp=/mnt/shared")

    # Then pct set ran on the node with exactly that option
    assert result.ok, result
    calls = ssh_server.pct_calls()[before:]
    assert len(calls) == 1 and calls[0].split()[1:] == ["set", "201", "-mp0", "/var/lib/vz/shared\\,mp=/mnt/shared"]


def test_pct_set_as_root_refuses_hosts_without_the_ssh_root_channel():
    # Given a host whose root channel is the ticket login, then pct set over SSH is refused
    with pytest.raises(ExecutorConfigError, match="not 'ssh'"):
        pct_set_as_root(make_host(root_channel=RootChannelChoices.TICKET), 201, mp0="/x,mp=/y")


def test_pct_set_command_quotes_values_and_rejects_odd_option_names():
    assert pct_set_command(201, features="nesting=1,keyctl=1", onboot=True) == [
        "pct", "set", "201", "-features", "nesting=1,keyctl=1", "-onboot", "1",
    ]
    with pytest.raises(ExecutorConfigError, match="not a pct option name"):
        pct_set_command(201, **{"mp0; rm": "x"})
    with pytest.raises(ExecutorConfigError, match="at least one parameter"):
        pct_set_command(201)


@override_settings(MAXPORTAL_PCT_COMMAND="/usr/sbin/pct")
def test_pct_command_comes_from_the_setting():
    command = executor_for(make_host(executor=ExecutorChoices.SIMULATED)).in_container_command(vmid=205, timeout_s=9)
    assert command[command.index("exec") - 1] == "/usr/sbin/pct"


# --- Simulated ---------------------------------------------------------------------------------


@pytest.fixture
def simulated():
    SimulatedExecutor.clear()
    yield SimulatedExecutor(make_host(executor=ExecutorChoices.SIMULATED), time_scale=0)
    SimulatedExecutor.clear()


CLI_SCRIPT = (
    "#!/usr/bin/env bash\n# maxportal-step: clis_installed\n"
    "# maxportal-cli: claude @anthropic-ai/claude-code\n# maxportal-cli: gemini @google/gemini-cli\n"
    "# maxportal-cli: codex @openai/codex\n# maxportal-cli: copilot @github/copilot\n"
)
# How the registry says the simulated executor answers the CLI step.
CLI_SIMULATION = STEPS["clis_installed"].simulated


def test_executor_errors_are_integration_errors_not_domain_errors():
    assert not issubclass(ExecutorError, DomainError)


def test_executor_for_picks_the_hosts_executor(ssh_host):
    assert isinstance(executor_for(make_host(executor=ExecutorChoices.SIMULATED)), SimulatedExecutor)
    assert isinstance(executor_for(ssh_host), SshExecutor)


def test_simulated_cli_step_reports_plausible_versions_and_records_the_run(simulated):
    # When the CLI step's script "runs" in CT201
    result = simulated.run_in_container(vmid=201, script=CLI_SCRIPT, timeout_s=60, simulation=CLI_SIMULATION)

    # Then it succeeds, says SIMULATED, reports a version per CLI and is recorded
    assert result.ok
    assert "SIMULATED" in result.output_tail
    versions = parse_reported_versions(result.output_tail)
    assert set(versions) == {"claude", "gemini", "codex", "copilot"}
    assert all(v[0].isdigit() for v in versions.values())
    run = SimulatedExecutor.history[-1]
    assert (run.vmid, run.step, run.script) == (201, "clis_installed", CLI_SCRIPT)
    assert "exec 201 --" in run.command


def test_simulated_executor_fails_when_told_to(simulated):
    # Given a failure injected once for the CLI step of CT202
    SimulatedExecutor.inject_failure("clis_installed", vmid=202, exit_code=7, output="npm ERR! simulated")

    # Then CT201 is not affected, CT202 fails once with that output, then succeeds again
    assert simulated.run_in_container(vmid=201, script=CLI_SCRIPT, timeout_s=60, simulation=CLI_SIMULATION).ok
    failed = simulated.run_in_container(vmid=202, script=CLI_SCRIPT, timeout_s=60, simulation=CLI_SIMULATION)
    assert (failed.exit_code, failed.ok) == (7, False) and "npm ERR! simulated" in failed.output_tail
    assert parse_reported_versions(failed.output_tail) == {}
    assert simulated.run_in_container(vmid=202, script=CLI_SCRIPT, timeout_s=60, simulation=CLI_SIMULATION).ok


def test_simulated_failures_from_the_setting(simulated):
    with override_settings(MAXPORTAL_SIMULATED_FAILURES=["203:clis_installed"]):
        assert not simulated.run_in_container(vmid=203, script=CLI_SCRIPT, timeout_s=60, simulation=CLI_SIMULATION).ok
        assert simulated.run_in_container(vmid=204, script=CLI_SCRIPT, timeout_s=60, simulation=CLI_SIMULATION).ok


def test_simulated_hang_is_cut_at_the_timeout(simulated):
    SimulatedExecutor.inject_failure("clis_installed", hang=True)
    result = simulated.run_in_container(vmid=201, script=CLI_SCRIPT, timeout_s=0.2, simulation=CLI_SIMULATION)
    assert result.timed_out and not result.ok
    assert result.duration_s >= 0.2


def test_simulated_steps_take_their_configured_time():
    # Given a time scale that makes the CLI step take 0.3 s
    host = make_host(executor=ExecutorChoices.SIMULATED)
    with override_settings(MAXPORTAL_SIMULATED_STEP_SECONDS={"clis_installed": 0.3}):
        executor = SimulatedExecutor(host, time_scale=1.0)
        result = executor.run_in_container(vmid=201, script=CLI_SCRIPT, timeout_s=60, simulation=CLI_SIMULATION)
        # Then it takes that long; and a step longer than its limit times out
        assert result.ok and 0.3 <= result.duration_s < 2
        slow = executor.run_in_container(vmid=201, script=CLI_SCRIPT, timeout_s=0.1, simulation=CLI_SIMULATION)
        assert slow.timed_out


def test_simulated_pct_set_as_root(simulated):
    host = make_host(executor=ExecutorChoices.SIMULATED)
    with override_settings(MAXPORTAL_SIMULATED_TIME_SCALE=0):
        result = pct_set_as_root(host, 206, mp0="/var/lib/vz/shared,mp=/mnt/shared")
    assert result.ok and "SIMULATED" in result.output_tail
    assert SimulatedExecutor.history[-1].step == "pct_set"
    assert "pct set 206 -mp0" in SimulatedExecutor.history[-1].script


def test_exec_result_ok_and_tail():
    assert ExecResult(0, "", 0.1, False).ok
    assert not ExecResult(0, "", 0.1, True).ok
    assert not ExecResult(1, "", 0.1, False).ok
    assert tail_text(b"a\nb\nc\n", lines=2) == "b\nc\n"
    assert len(tail_text("x" * 100_000).encode()) <= 16 * 1024
