"""The lease of a claimed turn, renewed while the turn runs, from a thread of its own.

A turn may run a script for many minutes. Its lease is short (MAXPORTAL_STEP_LEASE_SECONDS), and
this keeper renews it every third of that while the handler runs, so a live worker keeps its turn
and a killed one loses it within one lease: the turn is then taken over (``advance``) and the step
resumes. The renewal names the turn it renews (``turn = claimed``): once someone else took the turn
over, renewing fails and the keeper stops; the turn's outcome is then dropped the same way.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from django.db import DatabaseError, connections
from django.utils import timezone

from ..choices import StepRunStateChoices
from ..models import StepRun

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """``with LeaseKeeper(run_id, claimed, seconds):`` keeps the lease of turn ``claimed`` alive."""

    def __init__(self, run_id: int, claimed: int, seconds: float):
        self.run_id = run_id
        self.claimed = claimed
        self.seconds = seconds
        self.interval = max(seconds / 3, 0.05)
        self.renewals = 0
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"lease-{run_id}-{claimed}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _keep(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    renewed = StepRun.objects.filter(
                        pk=self.run_id, turn=self.claimed, state=StepRunStateChoices.RUNNING,
                        lease_until__isnull=False,
                    ).update(lease_until=timezone.now() + timedelta(seconds=self.seconds))
                except DatabaseError as exc:
                    # A passing database fault: the lease still has two thirds left; try again.
                    logger.warning("lease of run %s turn %s not renewed: %s", self.run_id, self.claimed, exc)
                    continue
                if not renewed:
                    # Taken over (this worker stalled past its lease) or reaped: nothing to keep, and
                    # this turn's outcome will be dropped when it ends.
                    self.lost = True
                    logger.warning("run %s turn %s is no longer held by this worker", self.run_id, self.claimed)
                    return
                self.renewals += 1
        finally:
            # This thread's own connection (Django's are per thread): give it back.
            connections.close_all()
