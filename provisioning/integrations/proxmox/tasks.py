"""Proxmox tasks (UPIDs): one reading of a task, the success rule, the error of a failed one.

Create, start, stop, destroy and snapshot return a UPID at once; the task is followed with
``GET /nodes/{node}/tasks/{upid}/status`` until it stopped. ``OK`` and ``WARNINGS: N`` are success,
anything else is the task's error text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ProxmoxError, ProxmoxTaskFailed

UPID_RE = re.compile(r"^UPID:(?P<node>[a-zA-Z0-9][a-zA-Z0-9.-]*):[0-9A-Fa-f]{8,}:[0-9A-Fa-f]{8,}:"
                     r"[0-9A-Fa-f]{8,}:(?P<type>[^:]*):(?P<id>[^:]*):(?P<user>[^:]+):$")
WARNINGS_RE = re.compile(r"^WARNINGS: \d+$")


@dataclass(frozen=True)
class TaskStatus:
    """One reading of a Proxmox task. ``ok`` is None while it runs."""

    upid: str
    running: bool
    ok: bool | None
    exitstatus: str | None
    log_tail: str = ""


def task_succeeded(exitstatus: str | None) -> bool:
    """Proxmox's rule: OK and "WARNINGS: N" are success, anything else is the error text."""
    return exitstatus == "OK" or bool(exitstatus and WARNINGS_RE.match(exitstatus))


def task_node(upid: str) -> str:
    """The node a task runs on (its status is read there)."""
    found = UPID_RE.match(upid or "")
    if not found:
        raise ProxmoxError(f"{upid!r} is not a Proxmox task id (UPID:node:pid:pstart:starttime:type:id:user:).")
    return found["node"]


def task_failure(status: TaskStatus) -> ProxmoxTaskFailed:
    """The error of a task that ended badly: Proxmox's exit status and the end of its log."""
    found = UPID_RE.match(status.upid)
    what = f"{found['type']} of {found['id']}" if found and found["id"] else (found["type"] if found else "task")
    return ProxmoxTaskFailed(
        f"Proxmox task {what} failed: {status.exitstatus}", upid=status.upid, exitstatus=status.exitstatus,
        log_tail=status.log_tail,
    )
