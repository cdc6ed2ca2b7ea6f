"""What can go wrong with a Proxmox call, and how an HTTP answer is classified.

Every failure is a ``ProxmoxError`` subclass carrying Proxmox's own message and HTTP status (and
for tasks the UPID, the exit status and the log tail). They are integration errors, not domain
errors: the checklist engine turns them into step outcomes, the services into refusals.

``classify`` decides what an HTTP error means: 595/596 are ``ProxmoxUnavailable`` (no answer from
the node) and other 5xx that may pass are ``ProxmoxServerError`` (an answer: a refusal in Proxmox's
words); the client retries both. The 500s Proxmox uses for definite answers ("CT 201 already
exists", "does not exist", "only root", "already running") are not retried.
"""

from __future__ import annotations

import re

from proxmoxer import ResourceException

ROOT_CHANNEL_HELP = (
    "Set the host's root channel: 'ticket' (root@pam password in the environment variable named by "
    "root_password_env) or 'ssh' (pct set as root over SSH with the host's ssh_* settings)."
)
EXISTS_RE = re.compile(r"\b(?P<kind>CT|VM) (?P<vmid>\d+) already exists on node '(?P<node>[^']*)'")
# 500s that are Proxmox's definite answer, not a passing fault: retrying cannot change them.
DEFINITE_500 = re.compile(
    r"already exists|does not exist|only root|only allowed for root|already running|not running"
    r"|unable to parse worker upid|no such task|unable to destroy|reserved name|protection mode"
    r"|no options specified|unable to (delete|modify) (required|read-only)|detected modified configuration"
    r"|checksum mismatch|storage '[^']*' does not",
    re.IGNORECASE,
)
# The container or task is not there (Proxmox answers 500, or 400 for a task, instead of 404).
NOT_FOUND_RE = re.compile(
    r"Configuration file '[^']*' does not exist|unable to parse worker upid|no such task", re.IGNORECASE
)
ROOT_MESSAGE_RE = re.compile(r"root@pam|only root", re.IGNORECASE)
# Proxmox returns 595/596 (AnyEvent::HTTP) when it cannot reach the node it proxies to.
UNAVAILABLE_STATUSES = {595, 596, 597, 598, 599}


class ProxmoxError(Exception):
    """A Proxmox call failed. ``message`` is what to show; Proxmox's own words are kept in it."""

    def __init__(self, message: str, *, status_code: int | None = None, upid: str | None = None,
                 log_tail: str = "", what: str = "", detail: str = ""):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.upid = upid
        self.log_tail = log_tail
        self.what = what  # the call, e.g. "POST nodes/ax42/lxc"
        self.detail = detail  # Proxmox's own words, when it answered

    def again(self, message: str) -> ProxmoxError:
        """The same error with another message (e.g. after the retries gave up)."""
        return type(self)(message, status_code=self.status_code, upid=self.upid, log_tail=self.log_tail,
                          what=self.what, detail=self.detail)


class ProxmoxUnavailable(ProxmoxError):
    """Proxmox did not answer: a timeout, a connection error, 595/596 (it could not reach the node),
    or a wait that timed out. Retried; trying again later may help."""


class ProxmoxServerError(ProxmoxUnavailable):
    """Proxmox answered with an HTTP 5xx that is not one of its definite answers (e.g. 500 "storage
    'local-lvm' is not online"): retried like no answer, since it may pass, but it is a refusal with
    Proxmox's own message (``detail``), not silence."""


class ProxmoxPermissionDenied(ProxmoxError):
    """Proxmox refused the credentials or the action (401/403, or a root-only 500)."""

    def __init__(self, message: str, *, needs_root: bool = False, **kwargs):
        super().__init__(message, **kwargs)
        self.needs_root = needs_root


class ProxmoxContainerExists(ProxmoxError):
    """The create failed because the vmid is taken (HTTP 500 "CT N already exists on node 'X'")."""

    def __init__(self, message: str, *, vmid: int, kind: str = "CT", node: str = "", **kwargs):
        super().__init__(message, **kwargs)
        self.vmid = vmid
        self.kind = kind
        self.node = node


class ProxmoxNotFound(ProxmoxError):
    """The container (or task) does not exist on the node."""


class ProxmoxTaskFailed(ProxmoxError):
    """A task ended with an exit status other than OK / WARNINGS: N."""

    def __init__(self, message: str, *, exitstatus: str | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.exitstatus = exitstatus


class ProxmoxRootRequired(ProxmoxError):
    """The change needs root@pam and the host has no root channel configured."""

    def __init__(self, message: str, *, params: list[str] | None = None, **kwargs):
        super().__init__(message, **kwargs)
        # The parameters only root@pam may set (e.g. ["features"], ["mp0"]): the checklist's step
        # registry says which steps set them.
        self.params = params or []


class ProxmoxSnapshotUnavailable(ProxmoxError):
    """A snapshot was refused before asking Proxmox: the container has a bind mount."""


def classify(what: str, exc: ResourceException, *, token_id: str) -> ProxmoxError:
    """The error an HTTP error answer of ``what`` (e.g. "POST nodes/ax42/lxc") stands for."""
    status = exc.status_code
    text = str(exc.content or exc.status_message or "").strip()
    errors = exc.errors
    if isinstance(errors, dict) and isinstance(errors.get("errors"), bytes):
        errors = None  # not JSON (a proxy's HTML page): the status line says enough
    if errors:
        text = f"{text} {errors}".strip()
    message = f"{what}: {text} (HTTP {status})"
    if status in UNAVAILABLE_STATUSES:
        return ProxmoxUnavailable(message, status_code=status, what=what, detail=text)
    found = EXISTS_RE.search(text)
    if found:
        return ProxmoxContainerExists(message, status_code=status, vmid=int(found["vmid"]),
                                      kind=found["kind"], node=found["node"])
    if status == 403 or (status == 500 and re.search(r"only root can", text, re.IGNORECASE)):
        needs_root = bool(ROOT_MESSAGE_RE.search(text))
        hint = (
            f" An API token is never root@pam: this needs the host's root channel. {ROOT_CHANNEL_HELP}"
            if needs_root
            else f" Grant the token ({token_id}) the privilege named above."
        )
        return ProxmoxPermissionDenied(message + hint, status_code=status, needs_root=needs_root)
    if status == 401:
        return ProxmoxPermissionDenied(
            message + f" Check the API token {token_id} and its secret.", status_code=status
        )
    if status == 404 or (status in (400, 500) and NOT_FOUND_RE.search(text)):
        return ProxmoxNotFound(message, status_code=status)
    # 501 (not implemented) is as definite as a 4xx.
    if status >= 500 and status != 501 and not DEFINITE_500.search(text):
        return ProxmoxServerError(message, status_code=status, what=what, detail=text)
    return ProxmoxError(message, status_code=status, what=what, detail=text)
