"""The `detector` command: the composition root that wires the three packages into one CLI.

`detector/` (the library), `train/` (training and evaluation) and `detector_bench/` never import this package
nor each other's command lines; each command module here only parses arguments and calls their APIs, and
imports them inside the command function, so `detector --help` loads neither torch nor scikit-learn.
"""
