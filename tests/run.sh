#!/usr/bin/env bash
# The README's test command (and CI's, after `bash install.sh`): set up what the tests need on a fresh
# machine, then `ruff check .`, the fast tests and the slow tests, each timed.
#
# Set-up: the test extras (dev, spark) with torch pinned in the same pip command as install.sh does (a
# looser pin pulls a multi-GB CUDA build), skipped when they are all installed already; Debian's chromium
# (the headless-browser tests) and a Java runtime (Spark) through apt-get where missing. Whatever cannot
# be installed is said in one line, with the tests that will therefore fail.
#   bash tests/run.sh               set up, then ruff, fast tests, slow tests
#   bash tests/run.sh --setup-only  only the set-up
set -uo pipefail
cd "$(dirname "$0")/.."

say() { echo "tests/run.sh: $*"; }

extras_installed() {
    # Every requirement of the package's dev and spark extras (and its torch pin) is met already.
    python - <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement

try:
    wanted = [Requirement(r) for r in requires("mgt-detector") or []]
    for spec in wanted:
        needed = spec.name == "torch" or (spec.marker is not None and any(
            spec.marker.evaluate({"extra": extra}) for extra in ("dev", "spark")))
        if needed and not spec.specifier.contains(version(spec.name), prereleases=True):
            sys.exit(1)
except PackageNotFoundError:
    sys.exit(1)
PY
}

apt_install() {  # apt_install PACKAGE WHAT-FAILS-WITHOUT-IT
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$1"; } >/dev/null 2>&1; then
        say "could not install $1 (apt-get failed or needs root); $2 will fail"
        return 1
    fi
}

setup() {
    local ok=0
    if extras_installed; then
        say "test extras (dev, spark) already installed"
    elif ! python -m pip install --quiet "torch==2.13.0" "openvino==2026.4.1" -e ".[dev,spark]"; then
        say "could not install the test extras (pip failed); ruff, the notebook and Spark tests will fail"
        ok=1
    fi
    if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
        say "chromium: $(command -v chromium || command -v chromium-browser)"
    else
        apt_install chromium "the headless-browser tests (test_html.py, test_serve.py)" || ok=1
    fi
    if command -v java >/dev/null 2>&1 || [ -n "${JAVA_HOME:-}" ]; then
        say "java: $(command -v java || echo "$JAVA_HOME")"
    else
        apt_install openjdk-17-jre-headless "the Spark tests (test_spark.py)" || ok=1
    fi
    return $ok
}

step() {  # step NAME COMMAND...: run it, time it, remember a failure
    local name=$1 started=$SECONDS
    shift
    say "$name: $*"
    if "$@"; then
        say "$name passed in $((SECONDS - started)) s"
    else
        say "$name FAILED in $((SECONDS - started)) s"
        failed+=("$name")
    fi
}

failed=()
setup || failed+=("set-up")
[ "${1:-}" = "--setup-only" ] && exit ${#failed[@]}
step ruff python -m ruff check .
step "fast tests" python -m pytest -q -m "not slow"
step "slow tests" python -m pytest -q -m slow
if [ ${#failed[@]} -gt 0 ]; then
    say "failed: ${failed[*]}"
    exit 1
fi
say "all passed"
