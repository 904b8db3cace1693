"""Experiments and benchmarks that no `detector` command runs: the calibration bench, the serving load test,
Spark against one process, the fault run, the second LM and LM tuning.

A folder of the source checkout, not of the installed package: run each from the repository's root as
`python -m experiments.<name>` (experiments/README.md lists them, their reports and their commands).
"""
