"""The checklist as a step registry: each of the plan's ten steps defined once, as one ``StepSpec``.

A spec says everything about its step: label and slug, whether a person does it, the steps it
waits for, how long one attempt may take, which Proxmox parameters it sets that only root@pam may
set, its script, its handler and after-hook, its preview on the page, and how the simulated
executor answers it. The engine, the grid, the admin and the
commands read ``STEPS``; nothing else restates a step. Adding a step is one ``STEPS.register(...)``
plus its script or handler (``tests/provisioning/test_registry.py`` registers a toy one).

``choices.StepChoices`` are the database's names of the same ten steps, kept equal to the registry
(a test checks it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from maxportal.kernel.errors import NotFound

from .choices import StepChoices
from .integrations.executors.base import Simulation
from .scripts import RenderedScript, ScriptRenderError, StepScript, render_script
from .steps import lxc, scripted, signal
from .steps.spec import StepSpec

if TYPE_CHECKING:
    from .models import Container

__all__ = ["SATISFIED_STATES", "STEPS", "StepRegistry", "StepSpec", "label", "render_step_script"]

# States that count as "prerequisite met".
SATISFIED_STATES: frozenset[str] = frozenset({"done", "skipped"})
SLUG_MAX_LENGTH = 20  # ChecklistStep.step


class StepRegistry:
    """The steps in checklist order; ``register`` adds one (after another, or at the end)."""

    def __init__(self, specs: Iterable[StepSpec] = ()):
        self._specs: dict[str, StepSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: StepSpec, *, after: str | None = None) -> StepSpec:
        if spec.slug in self._specs:
            raise ValueError(f"Step {spec.slug!r} is registered already.")
        if not spec.slug or len(spec.slug) > SLUG_MAX_LENGTH:
            raise ValueError(f"Step slug {spec.slug!r} must have 1 to {SLUG_MAX_LENGTH} characters.")
        unknown = [p for p in spec.prerequisites if p not in self._specs]
        if unknown:
            raise ValueError(f"Step {spec.slug!r} waits for unknown steps: {', '.join(unknown)}.")
        if spec.automated and spec.handler is None:
            raise ValueError(f"Automated step {spec.slug!r} needs a handler.")
        items = list(self._specs.items())
        at = len(items) if after is None else [slug for slug, _ in items].index(after) + 1
        items.insert(at, (spec.slug, spec))
        self._specs = dict(items)
        return spec

    def unregister(self, slug: str) -> None:
        dependents = [s.slug for s in self._specs.values() if slug in s.prerequisites]
        if dependents:
            raise ValueError(f"Steps {', '.join(dependents)} wait for {slug!r}.")
        self._specs.pop(slug)

    def __contains__(self, slug: object) -> bool:
        return slug in self._specs

    def __iter__(self):
        return iter(self._specs.values())

    def __getitem__(self, slug: str) -> StepSpec:
        try:
            return self._specs[slug]
        except KeyError:
            raise NotFound(f"There is no step '{slug}'. The steps are: {', '.join(self._specs)}.") from None

    @property
    def order(self) -> list[str]:
        return list(self._specs)

    @property
    def automated(self) -> list[str]:
        return [s.slug for s in self._specs.values() if s.automated]

    @property
    def manual(self) -> list[str]:
        return [s.slug for s in self._specs.values() if s.manual]

    def dependents(self, slug: str) -> list[str]:
        """The steps that wait for ``slug``."""
        return [s.slug for s in self._specs.values() if slug in s.prerequisites]

    def ready(self, states: dict, slug: str) -> bool:
        """The readiness rule: pending, and every prerequisite done or skipped (``states``: {step: state})."""
        return states.get(slug) == "pending" and all(
            states.get(p) in SATISFIED_STATES for p in self[slug].prerequisites
        )

    def needing_root(self, params: Iterable[str]) -> list[StepSpec]:
        """The steps that set any of the Proxmox parameters ``params`` (what needs root@pam, and why)."""
        wanted = set(params)
        return [s for s in self._specs.values() if wanted & set(s.root_params)]


def label(slug: str) -> str:
    return STEPS[slug].label


def render_step_script(slug: str, container: Container) -> RenderedScript:
    """The script of step ``slug`` for ``container``, ready to show or to run."""
    spec = STEPS[slug]
    if spec.script is None:
        scripted_steps = ", ".join(s.slug for s in STEPS if s.script)
        raise ScriptRenderError(f"Step '{slug}' has no script; the scripted steps are: {scripted_steps}.", step=slug)
    return render_script(slug, spec.script, container)


# --- The plan's ten steps (plan phases 2-8 and the master plan's dependencies) ---------------------
# The logins (Auth Complete) are attested by a person whenever they did them, so the manual steps
# wait for nothing; the automated ones wait for what they build on.

S = StepChoices
STEPS = StepRegistry([
    # Christian creates the mailbox by hand.
    StepSpec(S.M365_ACCOUNT, S.M365_ACCOUNT.label, manual=True, time_limit_s=0),
    StepSpec(
        S.LXC_CREATED, S.LXC_CREATED.label, time_limit_s=900,
        root_params=("features",), root_why="features keyctl=1", needs_root=lambda c: c.feature_keyctl,
        handler=lxc.lxc_created, preview=lxc.preview,
    ),
    StepSpec(
        S.BASE_CONFIG, S.BASE_CONFIG.label, prerequisites=(S.LXC_CREATED,), time_limit_s=1800,
        script=StepScript("provisioning/scripts/base_config.sh", "container", 1500, "Base configuration"),
        handler=scripted.script_step, preview=scripted.preview,
        simulated=Simulation(12.0, scripted.simulated_base_versions),
    ),
    StepSpec(
        S.CLIS_INSTALLED, S.CLIS_INSTALLED.label, prerequisites=(S.BASE_CONFIG,), time_limit_s=1200,
        script=StepScript("provisioning/scripts/clis_installed.sh", "container", 900, "CLI agents"),
        handler=scripted.script_step, after_script=scripted.record_cli_versions, preview=scripted.preview,
        simulated=Simulation(8.0, scripted.simulated_cli_versions),
    ),
    StepSpec(
        S.SYSTEMD_SETUP, S.SYSTEMD_SETUP.label, prerequisites=(S.CLIS_INSTALLED,), time_limit_s=300,
        script=StepScript("provisioning/scripts/systemd_setup.sh", "container", 180, "systemd units"),
        handler=scripted.script_step, preview=scripted.preview, simulated=Simulation(2.0),
    ),
    StepSpec(
        S.SIGNAL_DIR, S.SIGNAL_DIR.label, prerequisites=(S.BASE_CONFIG,), time_limit_s=300,
        root_params=("mp0",), root_why="the mp0 bind mount of the shared signal folder",
        script=StepScript("provisioning/scripts/signal_dir.sh", "node", 120, "Signal directory"),
        handler=scripted.signal_dir, preview=scripted.preview_signal_dir, simulated=Simulation(1.0),
    ),
    # The CLI logins are interactive OAuth.
    StepSpec(S.AUTH_COMPLETE, S.AUTH_COMPLETE.label, manual=True, time_limit_s=0),
    StepSpec(
        S.REPO_CLONED, S.REPO_CLONED.label, prerequisites=(S.BASE_CONFIG,), time_limit_s=900,
        script=StepScript("provisioning/scripts/repo_cloned.sh", "container", 900, "Repository"),
        handler=scripted.script_step, preview=scripted.preview, simulated=Simulation(5.0),
    ),
    StepSpec(
        S.SERVICES_RUNNING, S.SERVICES_RUNNING.label,
        prerequisites=(S.SYSTEMD_SETUP, S.SIGNAL_DIR, S.AUTH_COMPLETE, S.REPO_CLONED), time_limit_s=300,
        script=StepScript("provisioning/scripts/services_running.sh", "container", 180, "Services"),
        handler=scripted.script_step, after_script=scripted.mark_agents_running, preview=scripted.preview,
        simulated=Simulation(3.0, scripted.simulated_units),
    ),
    StepSpec(
        S.TEST_SIGNAL, S.TEST_SIGNAL.label, prerequisites=(S.SERVICES_RUNNING,), time_limit_s=300,
        handler=signal.test_signal, preview=signal.preview,
    ),
])
del S
