"""What one turn of a step handler decided: wait (poll again soon), done (verified), failed, blocked."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass
class Outcome:
    """What one turn of a step handler decided."""

    kind: str  # "wait", "done", "failed", "blocked"
    message: str = ""
    output: str = ""
    countdown: float = 0.0

    @classmethod
    def wait(cls, countdown: float | None = None) -> Outcome:
        return cls("wait", countdown=settings.MAXPORTAL_STEP_POLL_SECONDS if countdown is None else countdown)

    @classmethod
    def done(cls, output: str = "") -> Outcome:
        return cls("done", output=output)

    @classmethod
    def failed(cls, message: str, output: str = "") -> Outcome:
        return cls("failed", message=message, output=output)

    @classmethod
    def blocked(cls, message: str) -> Outcome:
        return cls("blocked", message=message)
