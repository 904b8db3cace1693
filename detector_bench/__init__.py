"""The side-by-side benchmark behind `detector bench`: the trained detector, the zero-shot baselines it
builds on (same LM, same run) and published large detectors on the same texts, written to
`detector_bench/RESULTS.md`, `detector_bench/results/*.csv` and `detector_bench/plots/*.png`.
"""

from pathlib import Path

# The source checkout the benchmarks read from and write to, and the default model's training manifest
# (here, light to import: `detector bench --help` needs them and nothing else).
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = ROOT / "data" / "default_training.json"
