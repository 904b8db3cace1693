"""Every recipe `detector train` offers, trained from the CLI on the fixture set, scores through each way a
user can name the model: its folder, `models:/NAME/1`, `runs:/ID/model` and the logged mlflow pyfunc, with
the same p(machine) everywhere. (A recipe whose fitted estimator holds a type outside the loader's
allow-list would be refused here with exit 2: the gradient-boosting recipes' LabelEncoder once was.)"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import MINI

from detector_cli.main import main
from detector_cli.train import RECIPE_CHOICES

# The aliases (hgb, logreg, rf) are the recipes hgb-all, logreg-all and rf-all: trained once, under those.
RECIPES = [name for name in RECIPE_CHOICES if name not in ("hgb", "logreg", "rf")]
TEXTS = 6


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _scored(model: str, store: str, capsys) -> list[float]:
    capsys.readouterr()
    code = main(["score", "--data", str(MINI), "--model", model, "--tracking-uri", store, "--format", "json", "-q"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return [r["p_machine"] for r in json.loads(out.out)[:TEXTS]]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_a_model_trained_from_the_cli_scores_by_folder_registry_run_and_pyfunc(recipe, store, tmp_path, capsys):
    folder = tmp_path / "model"
    assert main(["train", "--data", str(MINI), "--classifier", recipe, "--tracking-uri", store,
                 "--experiment", "recipes", "--register", f"tiny-{recipe}", "--output", str(folder)]) == 0
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=["recipes"])
    [run_id] = runs.loc[runs["params.classifier"] == recipe, "run_id"]
    by_folder = _scored(str(folder), store, capsys)
    by_registry = _scored(f"models:/tiny-{recipe}/1", store, capsys)
    by_run = _scored(f"runs:/{run_id}/model", store, capsys)
    texts = pd.read_json(MINI, lines=True)["text"].head(TEXTS)
    by_pyfunc = mlflow.pyfunc.load_model(f"models:/tiny-{recipe}/1").predict(pd.DataFrame({"text": texts}))
    assert by_pyfunc["error"].isna().all()
    assert all(0.0 <= p <= 1.0 for p in by_folder)
    for other in (by_registry, by_run, by_pyfunc["p_machine"].tolist()):
        assert np.array_equal(other, by_folder)
