"""Tests of the set-up scripts (run.sh, .ci/run) and the default settings file.

The run.sh tests work on a copy of the script in a temporary directory with a
fake ``.venv/bin/python`` (logs its arguments instead of installing) and fake
``dpkg-query``/``apt-get`` first on PATH, so they never touch the real venv or
the machine's packages.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_SH = ROOT / "run.sh"
CI_RUN = ROOT / ".ci" / "run"
CONFIG = ROOT / "config" / "synclass.toml"

# The documented settings and their defaults (config/synclass.toml must list
# exactly these, with exactly these values).
DEFAULTS = {
    "host": "127.0.0.1",
    "port": 8080,
    "data_dir": "data",
    "admin_key": "",
    "token_secret": "",
    "token_ttl_s": 43200,
    "tls_cert": "",
    "tls_key": "",
    "tls_self_signed": False,
    "public_url": "",
    "ice_host_addresses": [],
    "ice_servers": [],
    "max_ws_message_bytes": 262144,
    "hello_timeout_s": 10,
    "max_on_stage": 1,
    "log_level": "info",
    "debug_loggers": [],
    "recordings_dir": "",
    "recordings_max_age_days": 0,
    "recordings_max_bytes": 0,
}

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _write_exe(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


FAKE_PYTHON = """#!/usr/bin/env bash
# Fake venv python: logs every call; "-m pip" exits $FAKE_PIP_RC and, on
# success, creates the synclass entry point like a real install would.
echo "python $*" >> "$FAKE_LOG"
if [[ "$1" == "-m" && "$2" == "pip" ]]; then
    rc="${FAKE_PIP_RC:-0}"
    [[ "$rc" == 0 ]] && { printf '#!/bin/sh\\n' > "$(dirname "$0")/synclass"; chmod +x "$(dirname "$0")/synclass"; }
    [[ "$rc" != 0 ]] && echo "ERROR: fake pip failure" >&2
    exit "$rc"
fi
exit 0
"""

FAKE_DPKG_QUERY = """#!/usr/bin/env bash
# Fake dpkg-query -W -f=... PKG...: every package is installed except $FAKE_MISSING.
shift 2
for p in "$@"; do
    [[ " $FAKE_MISSING " == *" $p "* ]] || echo "$p installed"
done
"""

FAKE_APT_GET = """#!/usr/bin/env bash
echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> "$FAKE_LOG"
"""


@pytest.fixture
def sandbox(tmp_path: Path):
    """A copy of run.sh next to a pyproject.toml, a fake venv and fake apt tools."""
    shutil.copy2(RUN_SH, tmp_path / "run.sh")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\n')
    _write_exe(tmp_path / ".venv" / "bin" / "python", FAKE_PYTHON)
    _write_exe(tmp_path / "fakebin" / "dpkg-query", FAKE_DPKG_QUERY)
    _write_exe(tmp_path / "fakebin" / "apt-get", FAKE_APT_GET)
    log = tmp_path / "calls.log"
    log.touch()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SYNCLASS_")
    }
    env.update(
        PATH=f"{tmp_path / 'fakebin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        FAKE_LOG=str(log),
        FAKE_MISSING="",
    )

    class Box:
        root = tmp_path

        def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                ["./run.sh", *args],
                cwd=tmp_path,
                env={**env, **extra_env},
                capture_output=True,
                text=True,
                timeout=60,
            )

        def calls(self) -> list[str]:
            lines = log.read_text().splitlines()
            log.write_text("")
            return lines

    return Box()


def _pip_installs(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("python -m pip install")]


# --- syntax ------------------------------------------------------------------


@needs_bash
@pytest.mark.parametrize("script", [RUN_SH, CI_RUN], ids=["run.sh", ".ci/run"])
def test_scripts_parse_and_are_executable(script: Path) -> None:
    assert script.exists(), script
    assert os.access(script, os.X_OK), f"{script} is not executable"
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# --- run.sh command line -----------------------------------------------------


@needs_bash
@pytest.mark.parametrize("args", [["frobnicate"], []], ids=["unknown", "none"])
def test_run_sh_unknown_command_exits_2_with_usage(args: list[str]) -> None:
    res = subprocess.run(
        [str(RUN_SH), *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 2, res
    usage = res.stderr
    assert "usage" in usage.lower()
    for cmd in ("serve", "test", "demo", "bench"):
        assert re.search(rf"^\s+{cmd}\b", usage, re.M), f"{cmd} missing from usage:\n{usage}"
    assert 'not browser and not netns and not cluster' in usage


@needs_bash
def test_run_sh_help_exits_0() -> None:
    res = subprocess.run([str(RUN_SH), "--help"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0
    assert "serve" in res.stdout and "bench" in res.stdout


@needs_bash
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "--port", "9000", "a b"], "would exec: .venv/bin/synclass serve --port 9000 a\\ b"),
        (["demo", "-x"], "would exec: .venv/bin/synclass demo -x"),
        (["bench"], "would exec: .venv/bin/synclass bench"),
        (["export", "abc", "--out", "x.mp4"], "would exec: .venv/bin/synclass export abc --out x.mp4"),
        (
            ["test", "-m", "not browser", "-q"],
            "would exec: .venv/bin/python -m pytest -p no:cacheprovider -m not\\ browser -q",
        ),
    ],
)
def test_run_sh_passes_arguments_through(sandbox, args, expected) -> None:
    res = sandbox.run(*args, SYNCLASS_SETUP_DRY="1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == expected


# --- set-up: the install stamp -------------------------------------------------


@needs_bash
def test_setup_installs_once_per_pyproject(sandbox) -> None:
    first = sandbox.run("setup", "test")
    assert first.returncode == 0, first.stderr
    installs = _pip_installs(sandbox.calls())
    assert installs == ["python -m pip install --disable-pip-version-check -e .[test]"]

    # Same pyproject.toml: nothing to do, and nothing printed.
    second = sandbox.run("setup", "test")
    assert second.returncode == 0, second.stderr
    assert _pip_installs(sandbox.calls()) == []
    assert second.stdout == "" and second.stderr == ""

    # Dry run agrees that there is nothing to do.
    dry = sandbox.run("setup", "test", SYNCLASS_SETUP_DRY="1")
    assert "would run" not in dry.stdout

    # pyproject.toml changes: reinstall once.
    with open(sandbox.root / "pyproject.toml", "a") as f:
        f.write('description = "changed"\n')
    dry = sandbox.run("setup", "test", SYNCLASS_SETUP_DRY="1")
    assert "would run: .venv/bin/python -m pip install" in dry.stdout
    assert _pip_installs(sandbox.calls()) == []  # dry run installed nothing
    third = sandbox.run("setup", "test")
    assert third.returncode == 0
    assert "pyproject.toml changed" in third.stderr
    assert len(_pip_installs(sandbox.calls())) == 1
    sandbox.run("setup", "test")
    assert _pip_installs(sandbox.calls()) == []


@needs_bash
def test_failed_install_is_not_stamped(sandbox) -> None:
    res = sandbox.run("setup", "test", FAKE_PIP_RC="1")
    assert res.returncode != 0
    assert "pip install failed" in res.stderr
    assert "fake pip failure" in res.stderr  # the tool's own output is shown
    assert not (sandbox.root / ".venv" / ".synclass-install-stamp").exists()
    # The next run tries again.
    res = sandbox.run("setup", "test")
    assert res.returncode == 0, res.stderr
    assert len(_pip_installs(sandbox.calls())) == 2


@needs_bash
def test_missing_entry_point_triggers_reinstall(sandbox) -> None:
    assert sandbox.run("setup", "serve").returncode == 0
    sandbox.calls()
    (sandbox.root / ".venv" / "bin" / "synclass").unlink()
    assert sandbox.run("setup", "serve").returncode == 0
    assert len(_pip_installs(sandbox.calls())) == 1


@needs_bash
def test_dry_run_on_a_fresh_tree_creates_nothing(sandbox) -> None:
    shutil.rmtree(sandbox.root / ".venv")
    res = sandbox.run("setup", "test", SYNCLASS_SETUP_DRY="1")
    assert res.returncode == 0, res.stderr
    assert re.search(r"would run: \S*python3\S* -m venv \.venv", res.stdout), res.stdout
    assert "would run: .venv/bin/python -m pip install" in res.stdout
    assert not (sandbox.root / ".venv").exists()


# --- set-up: Debian packages -----------------------------------------------------


@needs_bash
@pytest.mark.skipif(os.geteuid() != 0, reason="the apt path runs only as root")
def test_missing_debian_packages_installed_with_one_update(sandbox) -> None:
    res = sandbox.run("setup", "test", FAKE_MISSING="chromium redis-server")
    assert res.returncode == 0, res.stderr
    apt = [c for c in sandbox.calls() if c.startswith("apt-get")]
    assert apt[0].startswith("apt-get update")
    assert len([c for c in apt if c.startswith("apt-get update")]) == 1
    install = [c for c in apt if c.startswith("apt-get install")]
    assert len(install) == 1
    assert "chromium" in install[0] and "redis-server" in install[0]
    assert "iproute2" not in install[0]
    assert all(c.endswith("DEBIAN_FRONTEND=noninteractive") for c in apt)


@needs_bash
def test_serve_does_not_want_test_packages(sandbox) -> None:
    res = sandbox.run("setup", "serve", FAKE_MISSING="chromium redis-server")
    assert res.returncode == 0, res.stderr
    assert not [c for c in sandbox.calls() if c.startswith("apt-get")]


@needs_bash
def test_nothing_missing_means_no_apt(sandbox) -> None:
    assert sandbox.run("setup", "test").returncode == 0
    assert not [c for c in sandbox.calls() if c.startswith("apt-get")]


@needs_bash
def test_without_apt_missing_packages_are_named_and_setup_continues(sandbox) -> None:
    res = sandbox.run(
        "setup", "test", FAKE_MISSING="chromium iproute2", SYNCLASS_SETUP_NO_APT="1"
    )
    assert res.returncode == 0, res.stderr
    assert "apt-get install -y chromium iproute2" in res.stderr or (
        "apt-get install -y iproute2 chromium" in res.stderr
    )
    assert "skipped" in res.stderr
    calls = sandbox.calls()
    assert not [c for c in calls if c.startswith("apt-get")]
    assert len(_pip_installs(calls)) == 1  # the rest of the set-up still ran


# --- .ci/run ---------------------------------------------------------------------------


@pytest.fixture
def ci_sandbox(tmp_path: Path):
    """.ci/run next to a fake run.sh that logs its arguments and exits $FAKE_RC."""
    _write_exe(tmp_path / ".ci" / "run", CI_RUN.read_text())
    _write_exe(
        tmp_path / "run.sh",
        '#!/usr/bin/env bash\nprintf "%s\\n" "$@" > args.txt\nexit "${FAKE_RC:-0}"\n',
    )

    def run(rc: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", ".ci/run"],
            cwd=tmp_path,
            env={**os.environ, "FAKE_RC": str(rc)},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )

    run.root = tmp_path  # type: ignore[attr-defined]
    return run


@needs_bash
def test_ci_runs_the_whole_suite_with_junit(ci_sandbox) -> None:
    res = ci_sandbox(0)
    assert res.returncode == 0, res.stderr
    args = (ci_sandbox.root / "args.txt").read_text().split("\n")
    assert args[0] == "test"
    assert "-ra" in args
    assert "--junitxml=artifacts/junit.xml" in args
    assert "--durations=15" in args
    assert "-m" not in args  # the whole suite: no marker filter
    assert (ci_sandbox.root / "artifacts").is_dir()


@needs_bash
@pytest.mark.parametrize("rc", [1, 2, 3, 4])
def test_ci_fails_when_tests_fail(ci_sandbox, rc: int) -> None:
    assert ci_sandbox(rc).returncode == rc


@needs_bash
def test_ci_treats_no_tests_as_failure(ci_sandbox) -> None:
    res = ci_sandbox(5)
    assert res.returncode != 0
    assert "no tests" in res.stderr


# --- config/synclass.toml ----------------------------------------------------------


def _config_examples() -> dict[str, str]:
    """The commented-out examples ``# key = value`` (possibly spanning lines
    until its brackets close), as TOML text per documented key."""
    examples: dict[str, str] = {}
    lines = CONFIG.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^# ?([a-z_]+) = ", lines[i])
        if m and m[1] in DEFAULTS:
            body = [lines[i].removeprefix("#").removeprefix(" ")]
            depth = body[0].count("[") - body[0].count("]")
            while depth > 0:
                i += 1
                assert lines[i].startswith("#"), f"unterminated example for {m[1]}"
                part = lines[i].removeprefix("#").removeprefix(" ")
                depth += part.count("[") - part.count("]")
                body.append(part)
            examples[m[1]] = "\n".join(body)
        i += 1
    return examples


def test_config_keys_and_defaults_are_the_documented_set() -> None:
    with open(CONFIG, "rb") as f:
        active = tomllib.load(f)
    # Settings that are unset by default appear commented out (the loader
    # refuses an empty string), the others with their default value.
    documented = set(active) | set(_config_examples())
    assert documented == set(DEFAULTS), (
        f"extra: {documented - set(DEFAULTS)}, missing: {set(DEFAULTS) - documented}"
    )
    for key, value in active.items():
        assert value == DEFAULTS[key], f"{key} = {value!r} but the default is {DEFAULTS[key]!r}"
    unset = {k for k, v in DEFAULTS.items() if v == ""}
    assert unset.isdisjoint(active), "empty-string settings must be commented out"


def test_config_explains_every_setting_and_the_env_vars() -> None:
    lines = CONFIG.read_text().splitlines()
    assert any("SYNCLASS_<NAME" in line for line in lines[:20])
    for i, line in enumerate(lines):
        m = re.match(r"^([a-z_]+)\s*=", line)
        if not m:
            continue
        # Each active setting is preceded by comment lines (its explanation,
        # possibly followed by a commented example).
        assert i > 0 and lines[i - 1].startswith("#"), f"{m[1]} has no comment explaining it"


def test_default_config_loads_as_the_builtin_defaults() -> None:
    settings = pytest.importorskip("server.settings")
    loaded = settings.load_settings(CONFIG, env={})
    assert loaded == settings.Settings()


def test_config_examples_are_valid_settings(tmp_path: Path) -> None:
    settings = pytest.importorskip("server.settings")
    with open(CONFIG, "rb") as f:
        active = tomllib.load(f)
    examples = _config_examples()
    text = "\n".join(examples.values())
    merged = tomllib.loads(text)
    assert set(merged) == set(examples)
    combined = tmp_path / "all.toml"
    combined.write_text(text + "\n")
    loaded = settings.load_settings(combined, env={})
    for key in examples:
        assert getattr(loaded, key) not in (None, (), ""), key
    assert set(active) | set(merged) == set(DEFAULTS)
