"""What every executor shares: the result of a script, the bounded output tail, the commands.

``Executor.run_in_container`` runs ``pct exec <vmid> -- bash -s`` on the node with the script on
stdin; ``run_on_node`` runs ``bash -s`` on the node itself. Every call has a time limit, enforced
by ``timeout`` on the node (and inside the container); output is kept bounded while it streams.
A ``Simulation`` says how the simulated executor should answer a script (the step registry gives
one per step); real executors ignore it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from provisioning.models import ProxmoxHost

OUTPUT_TAIL_LINES = 200
OUTPUT_TAIL_BYTES = 16 * 1024
TIMEOUT_EXIT_CODE = 124  # coreutils timeout's exit code; also reported when the client cuts a call


@dataclass(frozen=True)
class Simulation:
    """How the simulated executor answers one step's script: it takes ``seconds`` (before
    MAXPORTAL_SIMULATED_TIME_SCALE) and prints what ``answer(script)`` returns, as the real script would."""

    seconds: float = 1.0
    answer: Callable[[str], list[str]] | None = None


@dataclass(frozen=True)
class ExecResult:
    """What a script did: exit code, the tail of its output (stdout and stderr interleaved)."""

    exit_code: int
    output_tail: str
    duration_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def tail_text(data: bytes | str, *, lines: int = OUTPUT_TAIL_LINES, max_bytes: int = OUTPUT_TAIL_BYTES) -> str:
    """The last ``lines`` lines of ``data``, at most ``max_bytes`` of it, decoded leniently."""
    raw = data.encode() if isinstance(data, str) else data
    raw = raw[-max_bytes:]
    text = raw.decode("utf-8", errors="replace")
    kept = text.splitlines(keepends=True)[-lines:]
    return "".join(kept)


class TailBuffer:
    """Keeps only the end of a stream, so a chatty script cannot fill the worker's memory."""

    def __init__(self, limit: int = 4 * OUTPUT_TAIL_BYTES):
        self._limit = limit
        self._data = bytearray()

    def add(self, chunk: bytes) -> None:
        self._data += chunk
        if len(self._data) > 2 * self._limit:
            del self._data[: len(self._data) - self._limit]

    def tail(self) -> str:
        return tail_text(bytes(self._data))


def setting(name: str, default):
    return getattr(settings, name, default)


def pct_command() -> list[str]:
    """The node's ``pct`` (MAXPORTAL_PCT_COMMAND, default "pct" on the node's PATH)."""
    return shlex.split(setting("MAXPORTAL_PCT_COMMAND", "pct") or "pct")


def seconds_arg(value: float) -> str:
    return f"{max(float(value), 0.1):g}s"


def quote(parts: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in parts)


class Executor:
    """Runs the checklist's scripts for one Proxmox host.

    ``run_in_container`` runs ``pct exec <vmid> -- bash -s`` on the node with the script on stdin;
    ``run_on_node`` runs ``bash -s`` on the node itself. Subclasses implement ``_execute``.
    """

    def __init__(self, host: ProxmoxHost):
        self.host = host

    def in_container_command(self, *, vmid: int, timeout_s: float) -> list[str]:
        # timeout inside the container kills the script's whole process group there; the outer
        # one ends pct exec itself should the attach hang. Both before the client gives up.
        return [
            "timeout", "--kill-after=10s", seconds_arg(float(timeout_s) + 5),
            *pct_command(), "exec", str(int(vmid)), "--",
            "timeout", "--kill-after=5s", seconds_arg(timeout_s), "bash", "-s",
        ]

    def on_node_command(self, *, timeout_s: float) -> list[str]:
        return ["timeout", "--kill-after=5s", seconds_arg(timeout_s), "bash", "-s"]

    def run_in_container(self, *, vmid: int, script: str, timeout_s: float,
                         simulation: Simulation | None = None) -> ExecResult:
        command = self.in_container_command(vmid=vmid, timeout_s=timeout_s)
        return self._execute(command=command, script=script, timeout_s=float(timeout_s), vmid=int(vmid),
                             simulation=simulation)

    def run_on_node(self, *, script: str, timeout_s: float, simulation: Simulation | None = None) -> ExecResult:
        command = self.on_node_command(timeout_s=timeout_s)
        return self._execute(command=command, script=script, timeout_s=float(timeout_s), vmid=None,
                             simulation=simulation)

    def _execute(self, *, command: list[str], script: str, timeout_s: float, vmid: int | None,
                 simulation: Simulation | None) -> ExecResult:
        raise NotImplementedError
