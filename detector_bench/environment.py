"""Where a benchmark ran: CPU, cores, memory, library versions, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import sklearn
import torch

from detector.lm.runtime import cpu_name
from detector_bench import ROOT


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, str]:
    memory = memory_gib()
    return {
        "cpu": cpu_name(),
        "cores": str(os.cpu_count()),
        "memory": f"{memory:.0f} GiB" if memory else "unknown",
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "commit": git_commit(),
    }
