"""``StepSpec``: what the step registry (``provisioning.checklist``) says about one checklist step.

The class lives apart from the registry's entries so that the handlers the entries name can refer
to it without importing the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine.outcome import Outcome
    from ..integrations.executors.base import Simulation
    from ..models import Container, StepRun
    from ..scripts import StepScript


@dataclass(frozen=True)
class StepSpec:
    """One checklist step, as the engine and every interface see it."""

    slug: str
    label: str
    manual: bool = False  # done by a person and ticked (no handler)
    prerequisites: tuple[str, ...] = ()
    # How long one attempt may run before the reaper takes it back (seconds); well above what the
    # step takes on a real node.
    time_limit_s: int = 300
    # Proxmox parameters the step sets that an API token may not (root@pam only), what for, and
    # whether this container needs them (default: whenever the step has any).
    root_params: tuple[str, ...] = ()
    root_why: str = ""
    needs_root: Callable[[Container], bool] | None = None
    script: StepScript | None = None
    handler: Callable[[StepRun, StepSpec], Outcome] | None = None
    # After a script ended well: a problem to fail with, or None (e.g. a CLI reported no version).
    after_script: Callable[[StepRun, object], str | None] | None = None
    # (title, text) of what the step will do, shown on the page before it runs.
    preview: Callable[[Container, StepSpec], tuple[str, str]] | None = None
    simulated: Simulation | None = None

    @property
    def automated(self) -> bool:
        return not self.manual

    def root_needed(self, container: Container) -> bool:
        if not self.root_params:
            return False
        return self.needs_root(container) if self.needs_root else True
