"""The side-by-side benchmark behind `detector bench`: the trained detector, the zero-shot baselines it
builds on (same LM, same run) and published large detectors on the same texts, written to
`benchmarks/RESULTS.md`, `benchmarks/results/*.csv` and `benchmarks/plots/*.png`.
"""
