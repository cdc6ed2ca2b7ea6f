"""The in-container steps of the checklist as shell scripts, rendered per container.

Each script comes from a template under ``templates/provisioning/scripts/`` rendered with a
Django template engine that does not HTML-escape (these are shell scripts, not pages). Every
value that reaches a script is checked against a strict pattern and passed through
``shlex.quote`` where it lands in shell code, so a record can never inject a command.

What every rendered script keeps: ``set -euo pipefail``; safe to run again (it checks before it
creates, and replaces whole files instead of appending); clean under shellcheck; and a first
comment block naming its step and target (``# maxportal-step: ...``), which the simulated
executor reads. Scripts print machine-readable lines the engine parses:
``MAXPORTAL_VERSION <kind> <version>``, ``MAXPORTAL_UNIT <unit> <state>``,
``MAXPORTAL_INBOX <path>``, ``MAXPORTAL_REPO <commit> <url>``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Literal
from urllib.parse import urlsplit

from django.conf import settings
from django.template import Context, Engine

from eidolons.choices import CLI_AGENT_NPM_PACKAGES, CliAgentKindChoices
from eidolons.selectors import agents_of
from maxportal.kernel.errors import DomainError

from .models import Container

Target = Literal["container", "node"]


class ScriptRenderError(DomainError):
    """A script cannot be rendered for this container (missing Eidolon, unsafe value, ...)."""

    code = "script_render_error"


@dataclass(frozen=True)
class StepScript:
    """How one checklist step's script is made and run (each step's is in the step registry).

    Timeouts stay below Celery's soft time limit (1800 s) so a step fails by its own timeout, with
    its output, before the worker gives up on it. MAXPORTAL_SCRIPT_TIMEOUTS ({"base_config": 2400,
    ...}) overrides them.
    """

    template: str
    target: Target
    timeout_s: int
    title: str


# Provisioning plan, phase 3 ("Install base packages"), plus what adding NodeSource needs.
BASE_PACKAGES = (
    "git", "tmux", "curl", "wget", "build-essential", "python3", "python3-pip", "python3-venv",
    "sudo", "htop", "jq", "ca-certificates", "gnupg",
)
NODE_MAJOR = 20
# NodeSource's Debian repository for Node.js 20 (what the plan's setup_20.x adds). Fetched by
# the container on the real node, never by the portal or its tests.
NODESOURCE_KEY_URL = "https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key"
NODESOURCE_REPO_URL = f"https://deb.nodesource.com/node_{NODE_MAJOR}.x"

# Provisioning plan, phases 3, 6 and 8.
HOME_ROOT = "/home"
SHARED_ROOT = "/var/lib/vz/shared"
SIGNAL_ROOT = f"{SHARED_ROOT}/signals/max-pipeline"
MOUNT_POINT = "/mnt/shared"
SPARSE_PATHS = ("AI_Agents", "src/maestro", "scripts", "dashboards")
# Proxmox maps an unprivileged container's uid 0 to host uid 100000.
UNPRIVILEGED_IDMAP_BASE = 100000
SERVICES_SETTLE_SECONDS = 20

_LINUX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_NPM_PACKAGE = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
_CLI_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
_UNIT = re.compile(r"^[A-Za-z0-9@._:-]+\.service$")
_VERSION_LINE = re.compile(r"^MAXPORTAL_VERSION[ \t]+(\S+)[ \t]+(\S+)[ \t\r]*$", re.MULTILINE)
_UNDEFINED = "@@MAXPORTAL_UNDEFINED@@"


@dataclass(frozen=True)
class RenderedScript:
    """A script ready to run: its step, where it runs, its text and its time limit."""

    step: str
    target: Target
    text: str
    timeout_s: int


@cache
def _engine() -> Engine:
    # A private engine: autoescape off (shell, not HTML), and an unknown variable renders a marker
    # that render refuses, so a typo in a template never silently becomes an empty string.
    return Engine(
        dirs=[str(settings.BASE_DIR / "templates")],
        autoescape=False,
        string_if_invalid=_UNDEFINED,
    )


def timeout_for(step: str, script: StepScript) -> int:
    """The time limit of ``step``'s script: MAXPORTAL_SCRIPT_TIMEOUTS[step], else the script's own."""
    overrides = getattr(settings, "MAXPORTAL_SCRIPT_TIMEOUTS", None) or {}
    return int(overrides.get(step, script.timeout_s))


def _eidolon_of(container: Container):
    try:
        return container.eidolon
    except Container.eidolon.RelatedObjectDoesNotExist:
        raise ScriptRenderError(
            f"CT{container.vmid} ({container.hostname}) has no Eidolon: assign one to the container "
            f"before running its in-container steps.",
            vmid=container.vmid,
        ) from None


def _linux_user(eidolon, container: Container) -> str:
    user = eidolon.slug
    if not _LINUX_USER.match(user):
        raise ScriptRenderError(
            f"Eidolon slug '{user}' of CT{container.vmid} is not a usable Linux user name: use 1 to 32 "
            f"lower-case letters, digits, '-' or '_', starting with a letter (e.g. lilly).",
            vmid=container.vmid,
        )
    return user


def _clis(eidolon, container: Container) -> list[dict]:
    """The Eidolon's CLI agents with their npm packages; the plan's four when none are recorded."""
    rows = {agent.kind: agent.npm_package for agent in agents_of(eidolon=eidolon)}
    if not rows:
        rows = {str(kind): package for kind, package in CLI_AGENT_NPM_PACKAGES.items()}
    order = [str(kind) for kind in CliAgentKindChoices]
    clis = []
    for kind in sorted(rows, key=lambda k: (order.index(k) if k in order else len(order), k)):
        package = rows[kind] or CLI_AGENT_NPM_PACKAGES.get(kind, "")
        if not _CLI_KIND.match(kind):
            raise ScriptRenderError(f"CLI agent kind '{kind}' of CT{container.vmid} is not a safe name.")
        if not _NPM_PACKAGE.match(package):
            raise ScriptRenderError(
                f"npm package '{package}' of {eidolon.name}'s {kind} agent is not a valid npm package name: "
                f"fix it in the CLI agent record (e.g. @anthropic-ai/claude-code).",
                vmid=container.vmid,
            )
        # The plan's CLIs install a command named like their kind (claude, gemini, codex, copilot).
        clis.append({"kind": kind, "package": package, "package_q": shlex.quote(package), "command": kind})
    return clis


def _units(clis: list[dict]) -> list[str]:
    units = [f"max-agent@{cli['kind']}.service" for cli in clis]
    for unit in units:
        if not _UNIT.match(unit):
            raise ScriptRenderError(f"'{unit}' is not a valid systemd unit name.")
    return units


def agent_repo_url() -> str:
    """The repository the Eidolons clone (MAXPORTAL_AGENT_REPO_URL; no default on purpose).

    Credentials in the URL are refused: the rendered script is shown on the page.
    """
    url = (getattr(settings, "MAXPORTAL_AGENT_REPO_URL", "") or "").strip()
    if not url:
        return ""
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ScriptRenderError("MAXPORTAL_AGENT_REPO_URL contains whitespace or control characters.")
    if "://" in url:
        parts = urlsplit(url)
        if parts.password is not None:
            raise ScriptRenderError(
                "MAXPORTAL_AGENT_REPO_URL carries a password; scripts are shown on the page. Use a deploy "
                "key or a credential helper in the container instead."
            )
        if parts.scheme not in {"https", "ssh", "git", "file"}:
            raise ScriptRenderError(
                f"MAXPORTAL_AGENT_REPO_URL has scheme '{parts.scheme}': use https://, ssh:// or git@host:path."
            )
    return url


def _context(step: str, spec: StepScript, container: Container) -> dict:
    eidolon = _eidolon_of(container)
    user = _linux_user(eidolon, container)
    home = f"{HOME_ROOT}/{user}"
    clis = _clis(eidolon, container)
    inbox = f"{SIGNAL_ROOT}/{user}_inbox"
    container_inbox = f"{MOUNT_POINT}/signals/max-pipeline/{user}_inbox"
    return {
        "step": step,
        "target": spec.target,
        "vmid": int(container.vmid),
        "hostname": container.hostname,
        "eidolon_name": eidolon.name,
        "user": user,
        "user_q": shlex.quote(user),
        "home": home,
        "home_q": shlex.quote(home),
        "workspace_q": shlex.quote(f"{home}/workspace"),
        "base_packages": BASE_PACKAGES,
        "node_major": NODE_MAJOR,
        "nodesource_key_url_q": shlex.quote(NODESOURCE_KEY_URL),
        "nodesource_repo_url_q": shlex.quote(NODESOURCE_REPO_URL),
        "clis": clis,
        "units": _units(clis),
        "shared_root": SHARED_ROOT,
        "shared_root_q": shlex.quote(SHARED_ROOT),
        "signal_root_q": shlex.quote(SIGNAL_ROOT),
        "inbox_q": shlex.quote(inbox),
        "mount_point": MOUNT_POINT,
        "mount_point_q": shlex.quote(MOUNT_POINT),
        "container_inbox_q": shlex.quote(container_inbox),
        "idmap_base": UNPRIVILEGED_IDMAP_BASE if container.unprivileged else 0,
        "sparse_paths": SPARSE_PATHS,
        "repo_url_q": shlex.quote(agent_repo_url()) if step == "repo_cloned" else "''",
        "settle_seconds": SERVICES_SETTLE_SECONDS,
    }


def render_script(step: str, spec: StepScript, container: Container) -> RenderedScript:
    """``spec``'s script for checklist step ``step`` and ``container``, ready to show or to run."""
    context = _context(step, spec, container)
    context["template"] = spec.template
    text = _engine().get_template(spec.template).render(Context(context, autoescape=False))
    if _UNDEFINED in text:
        raise ScriptRenderError(f"The {step} template uses a value the renderer does not provide (a template bug).")
    return RenderedScript(step=step, target=spec.target, text=text, timeout_s=timeout_for(step, spec))


def parse_reported_versions(output: str, kinds: Iterable[str] | None = None) -> dict[str, str]:
    """``{kind: version}`` from the ``MAXPORTAL_VERSION <kind> <version>`` lines of a script's output.

    Other lines are ignored; a kind reported twice keeps its last version. With ``kinds``, only
    those are returned (the CLI step's output also names nothing else, but base config reports
    node, npm and python3 the same way).
    """
    found = dict(_VERSION_LINE.findall(output or ""))
    if kinds is None:
        return found
    wanted = {str(kind) for kind in kinds}
    return {kind: version for kind, version in found.items() if kind in wanted}
