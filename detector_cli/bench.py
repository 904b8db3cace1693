"""`detector bench`: regenerate detector_bench/RESULTS.md, results/*.csv and plots/*.png in one command."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from detector_bench import DEFAULT_MANIFEST, ROOT
from detector_cli.common import EXIT_OK, add_parser


def command_line(args: argparse.Namespace) -> str:
    """The command that regenerates these results, from the parsed options (defaults left out)."""
    parts = ["detector", "bench"]
    for flag in ("quick", "protocol", "speed"):
        if getattr(args, flag):
            parts.append(f"--{flag}")
    if args.data:
        parts += ["--data", *args.data]
    for option, value, default in (("--manifest", args.manifest, str(DEFAULT_MANIFEST)),
                                   ("--published", args.published, None),
                                   ("--out", args.out, str(ROOT / "detector_bench")), ("--seed", args.seed, 0),
                                   ("--attack-texts", args.attack_texts, None),
                                   ("--throughput-texts", args.throughput_texts, None)):
        if value != default:
            parts += [option, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def cmd_protocol(args: argparse.Namespace, command: str) -> int:
    from detector_bench.protocol_report import write_protocol
    from detector_bench.sample import manifest_name
    from train.default import BEFORE_TABLE, FEATURES_DIR, MANIFEST, RIVALS, SETTING

    name = manifest_name(MANIFEST)  # the shipped model's training table
    path = write_protocol(Path(args.out), FEATURES_DIR / f"{name}.parquet", FEATURES_DIR / "references.parquet",
                          SETTING, command, rivals=RIVALS, before_features=BEFORE_TABLE,
                          from_results=args.from_results)
    print(f"wrote {path}")
    return EXIT_OK


def cmd_speed(args: argparse.Namespace, command: str) -> int:
    import numpy as np

    from detector_bench.sample import load_table
    from detector_bench.speed import manifest_files, run_speed

    table, _ = load_table(args.data, args.manifest, quick=True, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    texts = table["text"].to_numpy()[rng.permutation(len(table))[: args.throughput_texts or 40]].tolist()
    dev = table.iloc[rng.permutation(len(table))[:150]]
    seed_text = (ROOT / "seeds" / "000_8fefe67b85776a8f.txt").read_text(encoding="utf-8")
    # the rebuild projection counts every text of the data the model is built from
    files = [Path(s) for s in args.data if Path(s).is_file()] if args.data else manifest_files(Path(args.manifest))
    path = run_speed(Path(args.out), texts, dev, seed_text, command, files)
    print(f"wrote {path}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from detector_bench.bench import BenchConfig, run_bench
    from detector_bench.published import DEFAULT_FOLDER

    command = command_line(args)
    if args.protocol:
        return cmd_protocol(args, command)
    if args.speed:
        return cmd_speed(args, command)
    config = BenchConfig(out=Path(args.out), data=args.data, manifest=Path(args.manifest),
                         published=Path(args.published or DEFAULT_FOLDER), quick=args.quick, seed=args.seed,
                         command=command)
    if args.attack_texts is not None:
        config.attack_texts = args.attack_texts
    if args.throughput_texts is not None:
        config.throughput_texts = args.throughput_texts
    results = run_bench(config)
    print(f"\nwrote {config.out / 'RESULTS.md'}, {config.out / 'results'}/*.csv, {config.out / 'plots'}/*.png "
          f"in {results.seconds['total'] / 60:.1f} min")
    return EXIT_OK


def add_commands(sub) -> None:
    """`detector bench` on the `detector` parser."""
    bench = add_parser(sub, "bench", "benchmark the detector against zero-shot baselines and published detectors", """
  detector bench --quick                     a small fixed subset, minutes
  detector bench --protocol                  the held-out-dataset protocol from the committed feature tables
  detector bench --out /tmp/bench            the full benchmark, written elsewhere
""")
    bench.add_argument("--quick", action="store_true", help="a small fixed subset: minutes, for tests and checks")
    bench.add_argument("--protocol", action="store_true",
                       help="only the held-out-dataset protocol, from the committed feature tables (PROTOCOL.md)")
    bench.add_argument("--from-results", action="store_true",
                       help="with --protocol: rewrite PROTOCOL.md from the results/protocol*.csv a run left, "
                            "refitting nothing")
    bench.add_argument("--speed", action="store_true",
                       help="only the LM engines side by side: tokens/s, AUROC, p(machine) changes (SPEED.md)")
    bench.add_argument("--data", nargs="+", metavar="SPEC", help="data specs instead of the manifest's sample")
    bench.add_argument("--manifest", default=str(DEFAULT_MANIFEST), metavar="FILE",
                       help="sampling manifest (default: data/default_training.json)")
    bench.add_argument("--published", metavar="DIR", help="published scores (default: ../shared/data/published)")
    bench.add_argument("--out", default=str(ROOT / "detector_bench"), metavar="DIR",
                       help="where RESULTS.md, results/ and plots/ go (default: detector_bench/)")
    bench.add_argument("--seed", type=int, default=0, help="seed of sampling and attacks")
    bench.add_argument("--attack-texts", type=int, metavar="N", help="machine (and human) texts to attack (100)")
    bench.add_argument("--throughput-texts", type=int, metavar="N", help="texts to time (48)")
    bench.set_defaults(func=cmd_bench)
