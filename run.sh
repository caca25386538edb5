#!/usr/bin/env bash
# run.sh — the only two commands a newcomer needs:
#
#   ./run.sh serve [synclass serve args…]   set up, then run the server (http://localhost:8080)
#   ./run.sh test  [pytest args…]           set up (test extras, chromium, redis-server), run the suite
#
# plus `demo`, `export` and `bench` passthroughs and `setup [serve|test]` (set-up only).
# Set-up works on a fresh Debian machine: it creates .venv, installs the
# project (editable, with test extras) only when pyproject.toml changed since
# the last install (hash stamp in .venv), and installs the Debian packages it
# needs with apt when they are missing and we are root. Quiet when there is
# nothing to do; a second run takes well under 2 s.
#
# Environment:
#   SYNCLASS_SETUP_DRY=1     print what set-up would do ("would run: …"), change nothing
#   SYNCLASS_SETUP_NO_APT=1  never call apt-get, even as root (report missing packages only)
#   SYNCLASS_PYTHON=…        interpreter used to create .venv (default: python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
cd "$ROOT"

VENV=".venv"
STAMP="$VENV/.synclass-install-stamp"
PY="${SYNCLASS_PYTHON:-python3}"
DRY="${SYNCLASS_SETUP_DRY:-0}"
NO_APT="${SYNCLASS_SETUP_NO_APT:-0}"
EXTRAS="test"
APT_UPDATED=0

say() { printf 'run.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
    cat <<'EOF'
usage: ./run.sh COMMAND [ARGS...]

commands:
  serve [ARGS...]     set up, then `synclass serve ARGS` (data in ./data, pages on http://localhost:8080)
  test [PYTEST ARGS]  set up (also chromium, redis-server), then run the whole test suite with pytest
  demo [ARGS...]      set up, then `synclass demo ARGS`
  bench [ARGS...]     set up, then `synclass bench ARGS`
  export [ARGS...]    set up, then `synclass export ARGS` (one lesson as one MP4)
  setup [serve|test]  only do the set-up (default: test)

quick local test run (no browser, namespaces or Redis cluster):
  ./run.sh test -m "not browser and not netns and not cluster"

environment: SYNCLASS_SETUP_DRY=1 (show what set-up would do), SYNCLASS_SETUP_NO_APT=1 (never run apt-get),
             SYNCLASS_PYTHON (interpreter for a new .venv, default python3)
EOF
}

is_dry() { [[ "$DRY" == 1 ]]; }

# act CMD…: run CMD, or in dry mode only say what would run.
act() {
    if is_dry; then
        printf 'would run:'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}

# quietly CMD…: run CMD with its output kept in a log; show the log if it fails.
quietly() {
    if is_dry; then act "$@"; return; fi
    local log rc=0
    log="$(mktemp "${TMPDIR:-/tmp}/synclass-setup.XXXXXX")"
    "$@" >"$log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        say "command failed (exit $rc): $*"
        say "----- its output (last 60 lines; full log: $log) -----"
        tail -n 60 "$log" >&2
        return "$rc"
    fi
    rm -f "$log"
}

can_apt() {
    [[ "$NO_APT" != 1 ]] && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1
}

apt_install() {
    if [[ $APT_UPDATED == 0 ]]; then
        say "apt-get update (needed to install: $*)"
        quietly env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
        APT_UPDATED=1
    fi
    say "apt-get install $* (this may take a few minutes)"
    quietly env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# missing_debs PKG…: print the packages that are not installed, one per line.
missing_debs() {
    local pkg
    if command -v dpkg-query >/dev/null 2>&1; then
        local installed
        installed="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null || true)"
        for pkg in "$@"; do
            grep -qx "$pkg installed" <<<"$installed" || echo "$pkg"
        done
    else
        # Not Debian: judge by the command each package provides.
        local cmd
        for pkg in "$@"; do
            case "$pkg" in
                iproute2) cmd=ip ;;
                fonts-*) continue ;;
                *) cmd="$pkg" ;;
            esac
            command -v "$cmd" >/dev/null 2>&1 || [[ -x "/usr/sbin/$cmd" || -x "/sbin/$cmd" ]] || echo "$pkg"
        done
    fi
}

ensure_debs() {
    local mode="$1" pkgs=(iproute2) missing=()
    # fonts-wqy-microhei: Chinese labels in browser-test screenshots instead of empty boxes
    [[ "$mode" == test ]] && pkgs+=(chromium redis-server fonts-wqy-microhei)
    mapfile -t missing < <(missing_debs "${pkgs[@]}")
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if can_apt; then
        if ! apt_install "${missing[@]}"; then
            if [[ "$mode" == test ]]; then
                die "could not install Debian packages: ${missing[*]} (see above). Fix apt, or run with SYNCLASS_SETUP_NO_APT=1 to skip the tests that need them."
            fi
            say "warning: could not install ${missing[*]}; carrying on without them"
        fi
    else
        local why="not root"
        [[ "$NO_APT" == 1 ]] && why="SYNCLASS_SETUP_NO_APT=1"
        command -v apt-get >/dev/null 2>&1 || why="no apt-get"
        say "note: Debian packages not installed: ${missing[*]} ($why)."
        say "      install them with: sudo apt-get install -y ${missing[*]}"
        [[ "$mode" == test ]] && say "      carrying on: tests that need them will be skipped."
    fi
    return 0
}

venv_ok() {
    [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1
}

ensure_venv() {
    venv_ok && return 0
    if [[ -e "$VENV" ]]; then
        say "$VENV exists but its python (or pip) does not work: recreating it"
        act rm -rf "$VENV"
    fi
    command -v "$PY" >/dev/null 2>&1 \
        || die "$PY not found. Install Python >= 3.11 (Debian: apt-get install -y python3 python3-venv) or set SYNCLASS_PYTHON."
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PY is $("$PY" -V 2>&1); synclass needs Python >= 3.11 (set SYNCLASS_PYTHON to one)."
    if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if can_apt; then
            apt_install python3-venv || die "could not install python3-venv (see above)"
        elif ! is_dry; then
            die "the Python venv module is missing. Install it with: sudo apt-get install -y python3-venv"
        fi
    fi
    say "creating $VENV"
    if ! quietly "$PY" -m venv "$VENV"; then
        rm -rf "$VENV"
        die "could not create $VENV with $PY -m venv (see above)"
    fi
}

ensure_python_deps() {
    local want have=""
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) extras=$EXTRAS"
    [[ -f "$STAMP" ]] && have="$(<"$STAMP")"
    if [[ "$want" == "$have" && -x "$VENV/bin/synclass" ]]; then
        return 0
    fi
    if [[ -z "$have" ]]; then
        say "installing synclass and its Python dependencies into $VENV (a few minutes the first time)"
    else
        say "pyproject.toml changed since the last install: reinstalling into $VENV"
    fi
    quietly "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".[$EXTRAS]" \
        || die "pip install failed (see above). Nothing was recorded, the next run will try again."
    if is_dry; then
        echo "would write: $STAMP"
    else
        printf '%s\n' "$want" >"$STAMP"
    fi
}

setup() {
    local mode="$1"
    # One set-up at a time (two terminals, or serve + test): lock this script.
    if command -v flock >/dev/null 2>&1; then
        exec 9<"$ROOT/run.sh"
        if ! flock -n 9; then
            say "waiting for another ./run.sh set-up to finish…"
            flock 9
        fi
    fi
    ensure_debs "$mode"
    ensure_venv
    ensure_python_deps
    if command -v flock >/dev/null 2>&1; then
        exec 9<&-
    fi
}

# launch CMD…: replace this shell by CMD (in dry mode: say so and stop).
launch() {
    if is_dry; then
        printf 'would exec:'; printf ' %q' "$@"; printf '\n'
        exit 0
    fi
    exec "$@"
}

cmd="${1:-}"
case "$cmd" in
    serve | demo | bench | export)
        shift
        setup serve
        launch "$VENV/bin/synclass" "$cmd" "$@"
        ;;
    test)
        shift
        setup test
        launch "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
        ;;
    setup)
        mode="${2:-test}"
        [[ "$mode" == serve || "$mode" == test ]] || { usage >&2; exit 2; }
        setup "$mode"
        ;;
    -h | --help | help)
        usage
        ;;
    "")
        usage >&2
        exit 2
        ;;
    *)
        say "unknown command: $cmd"
        usage >&2
        exit 2
        ;;
esac
