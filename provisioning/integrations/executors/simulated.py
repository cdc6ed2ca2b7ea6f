"""The SIMULATED executor of the local Proxmox: fakepve has no containers, so nothing runs.

It logs what it would run with SIMULATED, takes the step's simulated time, answers as the step's
script would (the ``Simulation`` the step registry gives it), and fails when told to. Whatever it
reports is marked SIMULATED wherever it is shown.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .base import TIMEOUT_EXIT_CODE, ExecResult, Executor, Simulation, quote, setting, tail_text

if TYPE_CHECKING:
    from provisioning.models import ProxmoxHost

logger = logging.getLogger(__name__)

_STEP_MARKER = re.compile(r"^# maxportal-step: (\S+)$", re.MULTILINE)

# How long the root channel's `pct set` takes in the simulation; a step's own time comes from its
# Simulation (the step registry), before MAXPORTAL_SIMULATED_TIME_SCALE (1.0 for `make run`, 0 in tests).
PCT_SET_SECONDS = 1.0


@dataclass(frozen=True)
class SimulatedRun:
    """One call the simulated executor answered (kept for the page and the tests)."""

    host: str
    vmid: int | None
    step: str
    command: str
    script: str
    result: ExecResult
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class _InjectedFailure:
    step: str
    vmid: int | None
    exit_code: int
    output: str
    hang: bool
    times: int


class SimulatedExecutor(Executor):
    """The SIMULATED executor of the local Proxmox: runs nothing, answers like the scripts do.

    Failures are injected with ``SimulatedExecutor.inject_failure(...)`` (process-wide, so a test
    worker thread sees it) or the MAXPORTAL_SIMULATED_FAILURES setting: a list of "step" or
    "<vmid>:step" entries that always fail. Step durations come from
    MAXPORTAL_SIMULATED_STEP_SECONDS times MAXPORTAL_SIMULATED_TIME_SCALE (tests set the scale to 0).
    """

    history: deque[SimulatedRun] = deque(maxlen=1000)
    _failures: list[_InjectedFailure] = []
    _lock = threading.Lock()

    def __init__(self, host: ProxmoxHost, *, time_scale: float | None = None):
        super().__init__(host)
        self.time_scale = (
            float(setting("MAXPORTAL_SIMULATED_TIME_SCALE", 1.0)) if time_scale is None else float(time_scale)
        )

    @classmethod
    def inject_failure(
        cls, step: str, *, vmid: int | None = None, exit_code: int = 1, output: str = "", hang: bool = False,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` runs of ``step`` (on ``vmid``, or any) fail, or hang to their timeout."""
        with cls._lock:
            cls._failures.append(_InjectedFailure(step, vmid, exit_code, output, hang, times))

    @classmethod
    def clear(cls) -> None:
        """Forget injected failures and recorded runs."""
        with cls._lock:
            cls._failures.clear()
            cls.history.clear()

    @classmethod
    def _take_failure(cls, step: str, vmid: int | None) -> _InjectedFailure | None:
        with cls._lock:
            for failure in cls._failures:
                if failure.step == step and failure.vmid in (None, vmid):
                    failure.times -= 1
                    if failure.times <= 0:
                        cls._failures.remove(failure)
                    return failure
        for entry in setting("MAXPORTAL_SIMULATED_FAILURES", None) or []:
            where, _, name = str(entry).rpartition(":")
            if name == step and (not where or (vmid is not None and where == str(vmid))):
                return _InjectedFailure(step, vmid, 1, f"failure injected by MAXPORTAL_SIMULATED_FAILURES ({entry})",
                                        False, 1)
        return None

    def _duration(self, step: str, simulation: Simulation | None) -> float:
        default = PCT_SET_SECONDS if step == "pct_set" else (simulation.seconds if simulation else 1.0)
        overrides = setting("MAXPORTAL_SIMULATED_STEP_SECONDS", None) or {}
        return max(float(overrides.get(step, default)) * self.time_scale, 0.0)

    @staticmethod
    def step_of(script: str) -> str:
        match = _STEP_MARKER.search(script)
        if match:
            return match.group(1)
        if re.search(r"^\s*\S*pct set ", script, re.MULTILINE):
            return "pct_set"
        return "script"

    def _execute(self, *, command: list[str], script: str, timeout_s: float, vmid: int | None,
                 simulation: Simulation | None = None) -> ExecResult:
        step = self.step_of(script)
        where = f"CT{vmid}" if vmid is not None else f"node {self.host.node}"
        shown = quote(command)
        logger.info("SIMULATED %s on %s (host %s): would run %s with %d bytes on stdin",
                    step, where, self.host.name, shown, len(script))
        lines = [f"SIMULATED: {where} on {self.host.name}: {shown} <<< {step} script ({len(script)} bytes)"]
        failure = self._take_failure(step, vmid)
        started = time.monotonic()
        duration = self._duration(step, simulation)
        if failure and failure.hang:
            time.sleep(max(timeout_s, 0))
            lines.append(f"maxportal: script cut at its {timeout_s:g}s time limit (SIMULATED hang)")
            result = ExecResult(TIMEOUT_EXIT_CODE, "\n".join(lines) + "\n", time.monotonic() - started, True)
        elif duration > timeout_s:
            time.sleep(max(timeout_s, 0))
            lines.append(f"maxportal: script cut at its {timeout_s:g}s time limit (SIMULATED {duration:g}s step)")
            result = ExecResult(TIMEOUT_EXIT_CODE, "\n".join(lines) + "\n", time.monotonic() - started, True)
        else:
            time.sleep(duration)
            if failure:
                lines.append(failure.output or f"SIMULATED failure of {step} (injected)")
                exit_code = failure.exit_code or 1
            else:
                lines.extend(simulation.answer(script) if simulation and simulation.answer else [])
                lines.append(f"SIMULATED: {step} done")
                exit_code = 0
            result = ExecResult(exit_code, tail_text("\n".join(lines) + "\n"), time.monotonic() - started, False)
        with self._lock:
            self.history.append(SimulatedRun(self.host.name, vmid, step, shown, script, result))
        return result
