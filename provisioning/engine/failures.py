"""Errors of the outside systems (Proxmox, the executors) and of the worker, as step outcomes.

A handler lets an integration error through; this module decides what the step then becomes and
says it in words a person can act on. Nothing else in the engine knows the integrations' error types.
"""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from maxportal.kernel.errors import DomainError

from .. import checklist
from ..integrations.executors.errors import ExecutorError
from ..integrations.proxmox.errors import (
    ProxmoxError,
    ProxmoxPermissionDenied,
    ProxmoxRootRequired,
    ProxmoxServerError,
    ProxmoxTaskFailed,
    ProxmoxUnavailable,
)
from ..models import StepRun
from ..steps.spec import StepSpec
from .outcome import Outcome

logger = logging.getLogger(__name__)


def run_handler(run: StepRun) -> Outcome:
    """One turn of the step's handler; whatever it raises becomes an Outcome."""
    spec = checklist.STEPS[run.step.step]
    try:
        outcome = spec.handler(run, spec)
        run.data.pop("unavailable", None)
        return outcome
    except ProxmoxRootRequired as exc:
        return Outcome.blocked(
            f"{exc.message} {spec.label} needs a root@pam channel on host {run.step.container.host.name}: "
            f"set it to a ticket login or SSH, then run the step again. {_root_steps(exc, spec)}"
        )
    except ProxmoxUnavailable as exc:
        # The client already retried with backoff; give Proxmox a few more chances before failing.
        count = run.data.get("unavailable", 0) + 1
        run.data["unavailable"] = count
        if count <= settings.MAXPORTAL_STEP_UNAVAILABLE_RETRIES:
            return Outcome.wait(min(settings.MAXPORTAL_STEP_POLL_SECONDS * 2**count,
                                    settings.MAXPORTAL_MAX_COUNTDOWN_SECONDS))
        tried = f"tried {count} time{'s' if count > 1 else ''}"
        if isinstance(exc, ProxmoxServerError):
            # It answered: a refusal in its own words, not silence.
            return Outcome.failed(
                f"Proxmox refused {exc.what} (HTTP {exc.status_code}): {exc.detail} ({tried}). "
                "Fix what it names on the host, then run the step again.",
                output=exc.log_tail or "",
            )
        return Outcome.failed(
            f"Proxmox on {run.step.container.host.name} did not answer ({tried}): {exc.message}. "
            "Check that the host is reachable, then run the step again.",
            output=exc.log_tail or "",
        )
    except ProxmoxPermissionDenied as exc:
        return Outcome.failed(
            f"Proxmox refused the call (HTTP {exc.status_code or 403}): {exc.message}. Give the API token the "
            "privilege it names, or use the host's root@pam channel.",
        )
    except ProxmoxTaskFailed as exc:
        return Outcome.failed(f"Proxmox task failed: {exc.message}", output=exc.log_tail or "")
    except ProxmoxError as exc:
        status = f" (HTTP {exc.status_code})" if exc.status_code else ""
        return Outcome.failed(f"Proxmox said{status}: {exc.message}", output=exc.log_tail or "")
    except ExecutorError as exc:
        return Outcome.failed(exc.message)
    except SoftTimeLimitExceeded:
        return Outcome.failed("The worker's time limit for one turn ran out; run the step again.")
    except DomainError as exc:
        return Outcome.failed(exc.message)
    except Exception as exc:
        logger.exception("step %s run %s crashed", run.step.step, run.pk)
        return Outcome.failed(f"The step crashed: {type(exc).__name__}: {exc}")


def _root_steps(exc: ProxmoxRootRequired, spec: StepSpec) -> str:
    """Which checklist steps need the root@pam channel, from the parameters Proxmox would refuse."""
    needing = checklist.STEPS.needing_root(exc.params) or [spec]
    named = "; ".join(f"{s.label} ({s.root_why or ', '.join(exc.params)})" for s in needing)
    return f"Steps that need it: {named}."
