"""The executor a host names, and the SSH root channel (``pct set`` as root on the node).

``pct_set_as_root`` is what ``ProxmoxClient`` calls for the parameters an API token may not set
when the host's root channel is ``ssh`` (MAXPORTAL_PVE_SSH_ROOT_RUNNER names it).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from provisioning.choices import ExecutorChoices, RootChannelChoices

from .base import ExecResult, Executor, pct_command, quote, setting
from .errors import ExecutorConfigError
from .simulated import SimulatedExecutor
from .ssh import SshExecutor

if TYPE_CHECKING:
    from provisioning.models import ProxmoxHost

_PCT_PARAM = re.compile(r"^[a-z][a-z0-9]*$")


def executor_for(host: ProxmoxHost) -> Executor:
    """The executor the host's ``executor`` field names."""
    if host.executor == ExecutorChoices.SIMULATED:
        return SimulatedExecutor(host)
    if host.executor == ExecutorChoices.SSH:
        return SshExecutor(host)
    raise ExecutorConfigError(
        f"Host {host.name} has executor '{host.executor}'; choose one of: "
        f"{', '.join(ExecutorChoices.values)}.",
        host=host.name,
    )


def pct_set_command(vmid: int, **params) -> list[str]:
    """``pct set <vmid> -<key> <value> ...``; True/False become 1/0."""
    if not params:
        raise ExecutorConfigError("pct set needs at least one parameter, e.g. mp0='/var/lib/vz/shared,mp=/mnt/shared'.")
    command = [*pct_command(), "set", str(int(vmid))]
    for key, value in params.items():
        if not _PCT_PARAM.match(key):
            raise ExecutorConfigError(f"'{key}' is not a pct option name (lower-case letters and digits, e.g. mp0).")
        if isinstance(value, bool):
            value = int(value)
        text = str(value)
        if any(ord(ch) < 32 for ch in text):
            raise ExecutorConfigError(f"The value of pct option {key} contains control characters.")
        command += [f"-{key}", text]
    return command


def pct_set_as_root(host: ProxmoxHost, vmid: int, **params) -> ExecResult:
    """The root channel over SSH: ``pct set`` as root on the node, for what tokens may not set.

    e.g. ``pct_set_as_root(host, 201, mp0="/var/lib/vz/shared,mp=/mnt/shared")`` or
    ``features="nesting=1,keyctl=1"``. The host's ssh_user must be root (or allowed to run pct).
    """
    if host.root_channel != RootChannelChoices.SSH:
        raise ExecutorConfigError(
            f"Host {host.name}'s root channel is '{host.root_channel}', not 'ssh': pct set as root over SSH "
            f"is not allowed for it. Set root_channel to ssh (with the SSH fields), or use the ticket channel.",
            host=host.name,
        )
    command = pct_set_command(vmid, **params)
    script = f"set -euo pipefail\n{quote(command)}\n"
    timeout_s = float(setting("MAXPORTAL_PCT_SET_TIMEOUT", 60))
    return executor_for(host).run_on_node(script=script, timeout_s=timeout_s)
