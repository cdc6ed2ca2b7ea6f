"""Test Signal: a TEST signal into the Eidolon's inbox; done when the Eidolon acknowledges it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eidolons.models import Signal
from eidolons.services import signal_acknowledge, signal_send

from ..choices import ExecutorChoices
from ..engine.outcome import Outcome
from ..models import Container, StepRun

if TYPE_CHECKING:
    from .spec import StepSpec


def test_signal(run: StepRun, spec: StepSpec) -> Outcome:
    container = run.step.container
    eidolon = getattr(container, "eidolon", None)
    if eidolon is None:
        return Outcome.failed(f"CT{container.vmid} houses no Eidolon: there is nobody to send a TEST signal to.")
    if run.phase == "begin":
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
        signal_acknowledge(signal_id=signal.pk, eidolon=eidolon)
        run.output_tail += f"\n(simulated executor) {eidolon.name}'s agent acknowledged signal #{signal.pk}."
    return Outcome.wait()


# pytest would collect a module-level function named test_*: this one is a step handler.
test_signal.__test__ = False


def preview(container: Container, spec: StepSpec) -> tuple[str, str]:
    eidolon = getattr(container, "eidolon", None) or "the Eidolon"
    return "Signal", f"TEST signal from 'portal' to {eidolon}'s inbox; done when the Eidolon acknowledges it."
