"""The project's top-level packages are its own from any directory: no installed distribution claims one of
their names ahead of the checkout (pysbd, a dependency, installs a top-level `benchmarks`, which is why the
bench room is `detector_bench`).

The subprocesses start outside the repository, as users run `detector`, with the checkout appended to the
END of sys.path (through a sitecustomize): whatever is installed comes first, as it does with the editable
install (its finder is consulted after site-packages) and with a regular one (same site-packages). This
also makes the test check this checkout, not whichever one the editable install points at."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

ROOT = ROOT.resolve()
PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))


def outside(tmp_path) -> dict:
    """The environment for a process in tmp_path that sees the installed packages first, then this checkout."""
    import os

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(f"import sys\nsys.path.append({str(ROOT)!r})\n")
    (tmp_path / "cwd").mkdir()
    return {**os.environ, "PYTHONPATH": str(hook)}


def test_each_top_level_package_is_the_projects_own_from_outside_the_checkout(tmp_path):
    assert {"detector", "detector_cli", "train", "analysis"} <= set(PACKAGES)
    env = outside(tmp_path)
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    print(name, importlib.import_module(name).__file__)"
    done = subprocess.run([sys.executable, "-c", code, *PACKAGES], capture_output=True, text=True,
                          cwd=tmp_path / "cwd", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    where = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    strangers = {name: file for name, file in where.items() if not file.startswith(str(ROOT) + "/")}
    assert not strangers, f"installed packages shadow the project's: {strangers}"


def test_bench_help_from_outside_the_checkout_has_no_unavailable_warning(tmp_path):
    env = outside(tmp_path)
    done = subprocess.run([sys.executable, "-m", "detector_cli", "bench", "--help"], capture_output=True,
                          text=True, cwd=tmp_path / "cwd", env=env, timeout=120)
    assert "unavailable" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert "usage: detector bench" in done.stdout
