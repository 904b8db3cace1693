"""`detector train` and `detector evaluate`: argument wiring only; the work is in train.run/evaluate."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from detector.core.errors import UserError
from detector_cli.common import (
    EXIT_OK,
    MODEL_HELP,
    add_parser,
    add_text_column,
    add_tracking_uri,
    positive_int,
    rate,
)

if TYPE_CHECKING:
    import pandas as pd

# The names of train.recipes (ALIASES, then RECIPES), spelled out so `--help` needs no torch or sklearn
# import; tests/train/test_protocol.py checks they match.
RECIPE_CHOICES = ("hgb", "logreg", "rf", "hgb-all", "logreg-all", "rf-all", "rf-all-but-dynamics",
                  "hgb-lm-monotone", "logreg-lm", "logreg-core", "logreg-normalised")

# train.fit.NOVELTY_RULES, spelled out for the same reason (checked by the same test).
NOVELTY_RULES = ("two-sided", "veto", "threshold")


def _cv_folds(value: str) -> int:
    k = int(value) if value.lstrip("-").isdigit() else None
    if k is None or k < 0 or k == 1:
        raise argparse.ArgumentTypeError(f"needs 0 (no CV) or 2 or more folds, not {value!r}")
    return k


def _label_map(pairs: list[str]) -> dict[str, int]:
    out = {}
    for pair in pairs or []:
        value, sep, label = pair.rpartition("=")
        if not sep or label not in ("0", "1"):
            raise UserError(f"--label-map takes VALUE=0 or VALUE=1, not {pair!r}")
        out[value] = int(label)
    return out


def _load_table(args: argparse.Namespace) -> pd.DataFrame:
    from train.data import load_manifest, load_specs

    if args.manifest:
        table, _ = load_manifest(args.manifest)
        return table
    if not args.data:
        raise UserError("give --data SPEC... (files, folders, hub ids) or --manifest FILE")
    return load_specs(args.data, text_column=args.text_column, label_column=args.label_column,
                      label_map=_label_map(args.label_map))


def _print_table(title: str, frame: pd.DataFrame) -> None:
    print(f"\n{title}")
    columns = [c for c in frame.columns if c not in ("brier", "ece")]
    print(frame[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def _data_inputs(args: argparse.Namespace) -> list[str]:
    """The files a command reads (data specs that exist locally, the manifest, the model folder)."""
    from pathlib import Path

    given = [*(args.data or []), *([args.manifest] if args.manifest else [])]
    if getattr(args, "model", None):
        given.append(args.model)
    return [g for g in given if Path(g).exists()]


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}")  # in the output the user reads (and keeps), not only on stderr
        print(f"detector: warning: {warning}", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    from detector.io.outputs import check_output
    from train.run import train_run

    if args.output:  # before the LM pass: a model folder never replaces the user's files
        check_output(args.output, "--output", _data_inputs(args), folder=True)
    table = _load_table(args)
    print(f"training on {len(table)} texts ({int(table['label'].sum())} machine)", file=sys.stderr)
    result = train_run(
        table, classifier=args.classifier, holdout_by=args.holdout_by or (), cv=args.cv, fpr=args.fpr,
        seed=args.seed, data_specs=args.data or [args.manifest], tracking_uri=args.tracking_uri,
        experiment=args.experiment, register=args.register, output=args.output,
        mlflow_enabled=not args.no_mlflow, lm=args.lm, max_tokens=args.max_tokens, run_name=args.run_name,
        novelty_rule=args.novelty_rule,
    )
    _print_table("test split (thresholds from the validation split):", result.test_table)
    if result.cv_auroc:
        import numpy as np

        print(f"\n{args.cv}-fold grouped CV AUROC on train: "
              + ", ".join(f"{s:.3f}" for s in result.cv_auroc)
              + f" (mean {np.mean(result.cv_auroc):.3f}, std {np.std(result.cv_auroc):.3f})")
    for by, frame in result.holdout.items():
        _print_table(f"leave-one-{by}-out (trained without it, tested on it):", frame)
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    print(f"\ntime: {timing}")
    _print_warnings(result.warnings)
    if result.run_id:
        print(f"mlflow run {result.run_id}; model {result.model_uri}")
    if args.output:
        print(f"model saved to {args.output}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from detector import Detector
    from detector.io.outputs import check_distinct, check_output, open_new
    from train.evaluate import check_plots_folder, evaluate_model, evaluation_plots, log_evaluation
    from train.fit import FeatureData

    given = _data_inputs(args)
    if args.output:  # before any model or LM work: the metric table never replaces a file
        check_output(args.output, "--output", given)
    if args.plots:
        check_distinct({"--output": args.output, "--plots": args.plots})
        check_plots_folder(args.plots, given)
    detector = Detector.load(args.model, tracking_uri=args.tracking_uri)  # and the run is logged there
    table = _load_table(args)
    if not args.no_mlflow:
        from train import tracking

        tracking.connect(args.tracking_uri, args.experiment)  # before the LM pass
    detector.model.set_lm(progress=True)
    data = FeatureData.compute(table, detector.model.scoring_engine)
    metric_table, p = evaluate_model(detector.model, data)
    _print_table(f"metrics at the model's threshold ({detector.model.thresholds.machine:.3f}):", metric_table)
    if args.plots:
        written = evaluation_plots(detector.model, data, p, args.plots)
        print(f"\nplots: {', '.join(str(p) for p in written.values())}")
    if args.output:
        with open_new(args.output, "--output") as out:
            metric_table.to_csv(out, index=False)
    if not args.no_mlflow:
        run_id = log_evaluation(detector.model, data, metric_table, p, args.model, args.data or [args.manifest],
                                args.plots)
        print(f"mlflow run {run_id}")
    return EXIT_OK


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", metavar="SPEC",
                        help="JSONL/CSV/Parquet files or folders, or Hugging Face dataset ids (id or id:split)")
    parser.add_argument("--manifest", metavar="FILE", help="a sampling manifest, e.g. data/default_training.json "
                        "(instead of --data)")
    add_text_column(parser)
    parser.add_argument("--label-column", default="label", metavar="NAME", help="the column holding the label")
    parser.add_argument("--label-map", nargs="*", metavar="VALUE=0|1",
                        help="map label values to 0 human / 1 machine (default: 0/1, human/machine, ai, ... known)")


def cmd_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from train.generate import generate, write_jsonl

    if Path(args.output).exists():
        raise UserError(f"--output {args.output} exists; choose a new file (nothing is overwritten)")
    if args.n < 1 or args.new_tokens < 2 or args.prompt_words < 1:
        raise UserError("--n, --prompt-words and --new-tokens must be positive (--new-tokens at least 2)")
    from train.data import load_spec

    if not args.data:
        raise UserError("give --data SPEC... with human texts to take prompts from")
    import pandas as pd

    humans = pd.concat([load_spec(s, text_column=args.text_column, label_column=args.label_column,
                                  label_map=_label_map(args.label_map)) for s in args.data], ignore_index=True)
    if not (humans["label"] == 0).any():
        raise UserError("the data holds no human texts (label 0) to take prompts from")
    table = generate(humans, args.lm, args.n, args.prompt_words, args.new_tokens, args.seed)
    write_jsonl(table, args.output)
    print(f"wrote {len(table)} continuations to {args.output}: "
          + ", ".join(f"{k} {v}" for k, v in table.groupby("decoding").size().items()))
    return EXIT_OK




def add_commands(sub) -> None:
    """`detector train | evaluate | generate` on the `detector` parser."""
    train = add_parser(sub, "train", "train a detector on labelled data, tracked in mlflow", """
  detector train --data labelled.jsonl --output my-model
  detector train --data human.csv machine.csv --text-column body --classifier logreg --cv 5
  detector train --manifest data/default_training.json --holdout-by generator --register detector
  detector train --data labelled.parquet --tracking-uri http://mlflow.local:5000 --experiment essays
""")
    _data_arguments(train)
    train.add_argument("--classifier", choices=RECIPE_CHOICES, default="hgb",
                       help="recipe: features + classifier (see train/recipes.py; hgb = hgb-all)")
    train.add_argument("--holdout-by", nargs="*", choices=("generator", "domain"),
                       help="also train without each generator/domain and test on it (default: none)")
    train.add_argument("--cv", type=_cv_folds, default=0, metavar="K",
                       help="grouped K-fold CV on the train split (default: 0, none)")
    train.add_argument("--fpr", type=rate, default=0.01, help="false-positive rate for the verdict threshold")
    train.add_argument("--novelty-rule", choices=NOVELTY_RULES, default=NOVELTY_RULES[0],
                       help="a text unlike every human the model saw: two-sided (the default: never called machine "
                            "unless it lies among the training machine texts), veto (never called machine) or "
                            "threshold (a stricter threshold)")
    train.add_argument("--seed", type=int, default=0, help="seed of the splits and the classifier")
    train.add_argument("--lm", default="smollm2-135m-instruct", help="LM name, transformers id or path")
    train.add_argument("--max-tokens", type=positive_int, default=512, help="tokens of each text the LM reads")
    train.add_argument("--output", metavar="DIR",
                       help="the model folder to write, new or empty (default: only logged to mlflow)")
    add_tracking_uri(train)
    train.add_argument("--experiment", default="detector", help="mlflow experiment name")
    train.add_argument("--run-name", help="mlflow run name (default: train-RECIPE-DATA-TIME)")
    train.add_argument("--register", metavar="NAME", help="register the model under this name (default: not)")
    train.add_argument("--no-mlflow", action="store_true", help="do not track the run")
    train.set_defaults(func=cmd_train)

    evaluate = add_parser(sub, "evaluate", "metrics and plots of a model on labelled data, tracked in mlflow", """
  detector evaluate --data test.jsonl                                   the shipped model
  detector evaluate --model my-model --data test.csv --plots plots/ --output metrics.csv
  detector evaluate --model models:/detector/3 --tracking-uri sqlite:///runs/mlflow.db --data test.jsonl
""")
    evaluate.add_argument("--model", metavar="URI_OR_PATH", help=MODEL_HELP)
    _data_arguments(evaluate)
    evaluate.add_argument("--plots", metavar="DIR", help="write ROC, PR, histograms ... as PNG here (new folder)")
    evaluate.add_argument("--output", metavar="FILE.csv", help="the metric table (CSV) to write, new (default: "
                          "printed only)")
    add_tracking_uri(evaluate)
    evaluate.add_argument("--experiment", default="detector", help="mlflow experiment of the evaluation run")
    evaluate.add_argument("--no-mlflow", action="store_true", help="do not log an evaluation run")
    evaluate.set_defaults(func=cmd_evaluate)

    generate = add_parser(sub, "generate", "continue human prompts with the local LM over a decoding grid", """
  detector generate --data human.jsonl --output machine.jsonl --n 200
""")
    _data_arguments(generate)
    generate.add_argument("--output", required=True, metavar="FILE.jsonl",
                          help="the JSONL file of continuations to write, new (never overwritten)")
    generate.add_argument("--lm", default="smollm2-135m-instruct", help="LM name, transformers id or path")
    generate.add_argument("--n", type=int, default=200, help="how many continuations")
    generate.add_argument("--prompt-words", type=int, default=30, help="words of each human text as prompt")
    generate.add_argument("--new-tokens", type=int, default=160, help="tokens to generate per text")
    generate.add_argument("--seed", type=int, default=0, help="sampling seed")
    generate.set_defaults(func=cmd_generate)
