"""Shared fixtures. The real default LM runs here (it installs from PyPI); only pure-function tests
use synthetic token statistics. Token statistics are cached in a per-session temporary file so the
tests prove the LM pass, not a warm user cache.

Tests are fast (pure, no LM) or `slow` (the real LM): `python -m pytest -m "not slow"` runs the fast
ones in seconds. A test is slow when it uses a fixture that loads the LM (`LM_FIXTURES`) or is marked
so; a fast test that loads the LM all the same fails, saying it should be marked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline

from detector.decision.thresholds import Thresholds
from detector.features.engine import FEATURE_NAMES, MACHINE_DIRECTION
from detector.lm import stats_cache as cache_module
from detector.lm.token_stats import TokenStats
from detector.model.detector_model import DEFAULT_MODEL_DIR, DetectorModel
from detector.model.extractor import FeatureExtractor
from train.fit import FeatureData

FIXTURES = Path(__file__).parent / "fixtures"
MINI = FIXTURES / "mini.jsonl"
ROOT = Path(__file__).parent.parent
SEED = ROOT / "seeds" / "000_8fefe67b85776a8f.txt"

# A paragraph written for these tests by a person (this project's authors).
HUMAN_TEXT = (
    "We moved the allotment shed on Saturday, which took four of us and most of the morning. "
    "Ruth insisted the floor would hold if we lifted from the corners; it did not, and the left "
    "panel came away with a sound like a wet branch. Nobody was hurt. We ate the sandwiches sitting "
    "on the compost bins, argued about whether to rebuild or buy a kit, and decided nothing, which "
    "is how most committee decisions at the allotment get made. By three the rain had set in, so "
    "we stacked the panels under a tarpaulin and went home to dry out."
)

# A second one. (Repeating HUMAN_TEXT would not do: the LM predicts a repeated paragraph almost
# perfectly, so a copy looks machine-made, which is true of copies and not what a test wants.)
HUMAN_TEXT_2 = (
    "My grandmother kept her buttons in a biscuit tin that had long since lost its lid's hinge, so "
    "opening it meant a small landslide onto the kitchen table. She could name the coat each button "
    "came from, or claimed she could, and we never caught her out. The brass ones were from my "
    "grandfather's railway uniform. When the tin came to me I sorted them by colour one wet afternoon, "
    "then felt I had tidied away her stories, and tipped them back in."
)


# Fixtures that load the real LM (or train with it): a test that uses one is slow.
LM_FIXTURES = {"default_detector", "tiny_model_dir", "lm", "detector", "api", "served", "trained", "report",
               "bench_out", "notebook_env", "corpus"}


# Files whose tests all run the LM (in this process or in a `detector` subprocess), and single tests
# that do without an LM fixture.
SLOW_FILES = {"test_lm.py", "test_scoring.py", "test_cli_properties.py", "test_generate.py", "test_training.py",
              "test_spark.py", "test_serve.py", "test_html.py"}
SLOW_TESTS = {"test_scoring_with_a_locked_cache_still_scores_everything",
              "test_resume_after_a_torn_line_with_the_input_spelled_differently",
              "test_ansi_file_names_are_printed_escaped", "test_cli_scores_arbitrary_unicode",
              "test_the_computed_side_by_side_of_notebook_04", "test_notebook_runs_as_is",
              # test_engines.py: the LM on both engines
              "test_openvino_statistics_match_torch_float32",
              "test_the_real_lm_scores_many_windows_side_by_side_to_the_same_bit",
              "test_the_graph_is_cached_and_reused_without_torch",
              "test_unknown_engine_is_refused_and_the_default_falls_back_where_it_cannot_run",
              # test_everyday.py: tables scored with the default model
              "test_score_a_csv_table_to_csv", "test_a_table_given_as_a_path_is_warned_about_and_jsonl_alias_reads_csv",
              "test_explain_is_shown_in_the_table"}


def pytest_collection_modifyitems(items):
    for item in items:
        if (LM_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in SLOW_FILES
                or item.originalname in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _fast_tests_load_no_lm(request, monkeypatch):
    """In a test not marked slow, loading the LM is an error (it would make the fast run slow)."""
    if request.node.get_closest_marker("slow"):
        return

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} loads the LM: mark it @pytest.mark.slow")

    import detector.features.engine
    import detector.lm.language_model
    import detector.lm.runtime

    monkeypatch.setattr(detector.lm.language_model.LanguageModel, "__init__", refuse)
    monkeypatch.setattr(detector.features.engine, "shared_lm", refuse)
    monkeypatch.setattr(detector.lm.runtime, "measure", refuse)  # timing the runtimes runs the LM


@pytest.fixture(scope="session", autouse=True)
def _temporary_stats_cache(tmp_path_factory):
    # DETECTOR_TEST_STATS_CACHE lets a developer keep the cache between local runs; CI starts empty.
    path = os.environ.get("DETECTOR_TEST_STATS_CACHE") or tmp_path_factory.mktemp("cache") / "token_stats.sqlite"
    os.environ["DETECTOR_STATS_CACHE"] = str(path)
    yield path


@pytest.fixture(scope="session")
def mini_table():
    from train.data import load_spec

    return load_spec(str(MINI))


@pytest.fixture(scope="session")
def default_detector():
    from detector import Detector

    return Detector()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, mini_table):
    """A detector trained on the fixture set with the real LM (logistic regression, fast)."""
    from train.run import train_run

    folder = tmp_path_factory.mktemp("tiny_model")
    train_run(mini_table, classifier="logreg", mlflow_enabled=False, output=folder, progress=False)
    return folder


def random_feature_table(n: int, seed: int):
    """A feature table of standard-normal numbers (no LM): for tests of what a classifier file holds."""
    import numpy as np
    import pandas as pd

    from detector.features.engine import FEATURE_NAMES

    return pd.DataFrame(np.random.default_rng(seed).normal(size=(n, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))


def tiny_detector_folder(folder: Path, estimator, n: int = 120) -> Path:
    """A detector folder: the shipped card and a pipeline whose classifier (`estimator`, calibrated once,
    as the forest recipes are) is fitted on `n` rows of random numbers."""
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    from detector.features.engine import FEATURE_NAMES

    table = random_feature_table(n, 0)
    labels = (table.iloc[:, 0] + np.random.default_rng(1).normal(size=len(table)) > 0).astype(int)
    steps = Pipeline([
        ("select", ColumnTransformer([("keep", "passthrough", list(FEATURE_NAMES))], verbose_feature_names_out=False)),
        ("impute", SimpleImputer(strategy="median")),
        ("scale", StandardScaler()),
        ("classify", CalibratedClassifierCV(estimator, method="sigmoid", cv=3, ensemble=False)),
    ]).fit(table, labels)
    model = DetectorModel.load(DEFAULT_MODEL_DIR)
    model.pipeline = Pipeline([("features", FeatureExtractor()), *steps.steps])
    model.novelty = None
    folder.mkdir(parents=True)
    model.save(folder)
    return folder


LONG = ("The committee met on Tuesday to discuss the budget for the coming year. Several members raised "
        "concerns about the cost of the new library wing, which had grown by a third since the plans were "
        "first drawn. After a long debate they agreed to ask the architect for a cheaper design.")


SHORT = "I never liked the smell of the old bus station, but I loved the man who sold newspapers there."


def table_files(tmp_path):
    rows = [{"id": 1, "body": LONG, "author": "a"}, {"id": 2, "body": None, "author": "b"},
            {"id": 3, "body": SHORT, "author": "c"}]
    pd.DataFrame(rows).to_csv(tmp_path / "texts.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "texts.parquet")
    return rows


def synthetic_data(n: int = 240, seed: int = 0) -> FeatureData:
    """Three datasets whose machine texts are shifted up on every machine-direction feature."""
    rng = np.random.default_rng(seed)
    label = np.tile([0, 1], n // 2)
    features = pd.DataFrame(rng.normal(0, 1, (n, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    for name in FEATURE_NAMES:
        features[name] += 1.5 * label * MACHINE_DIRECTION.get(name, 0)
    table = pd.DataFrame({"id": [f"s:{i}" for i in range(n)], "label": label,
                          "dataset": np.repeat(["a", "b", "c"], n // 3), "domain": np.repeat(["x", "y", "z"], n // 3),
                          "generator": np.where(label == 1, "g", "human"), "attack": None, "pair_id": None})
    return FeatureData(table, features, np.full(n, 200))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text(HUMAN_TEXT, encoding="utf-8")
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": HUMAN_TEXT}) + "\n", encoding="utf-8")
    (tmp_path / "ev.jsonl").write_bytes(MINI.read_bytes())
    (tmp_path / "old.txt").write_text("precious", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.txt").write_text(HUMAN_TEXT_2, encoding="utf-8")
    (tmp_path / "model_dir").mkdir()
    (tmp_path / "model_dir" / "keep.txt").write_text("mine", encoding="utf-8")
    os.link(tmp_path / "a.txt", tmp_path / "hard.txt")
    os.link(tmp_path / "in.jsonl", tmp_path / "hard.jsonl")
    (tmp_path / "sym.txt").symlink_to(tmp_path / "a.txt")
    return tmp_path


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture
def fresh_cache_state(monkeypatch):
    monkeypatch.setattr(cache_module, "_unusable", {})
    monkeypatch.setattr(cache_module, "TIMEOUT_S", 0.2)


BANDED = Thresholds(machine=0.9, machine_fpr=0.01, borderline=0.7, borderline_fpr=0.05, min_tokens=16,
                    by_length=[[64, 0.9, 0.7], [128, 0.8, 0.6], [256, 0.75, 0.55]])


any_text = st.text(st.characters(codec="utf-8"), max_size=400)


def synthetic_stats(logp, rank, entropy=None, var=None) -> TokenStats:
    """Synthetic statistics: allowed here, for pure functions only."""
    n = len(logp)
    entropy = np.full(n, 2.0) if entropy is None else entropy
    var = np.full(n, 1.0) if var is None else var
    return TokenStats(np.asarray(logp, np.float32), np.asarray(rank, np.float32), np.asarray(entropy, np.float32),
                      np.asarray(var, np.float32), np.arange(n, dtype=np.int32), np.arange(1, n + 1, dtype=np.int32))
