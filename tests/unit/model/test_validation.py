"""A model file whose tree arrays are crafted cannot crash the process or give a verdict.

Tiny random-forest and gradient-boosting detectors are fitted on random numbers, saved with skops, and
then edited the way an attacker would edit the file: one node array (a .npy entry) or the node count
(a JSON entry) of the first tree. Each crafted file must be refused by the project's loader in one
line (exit 2 from the CLI) while the process lives on. Loading and predicting run in subprocesses, so a
segfault or an endless loop shows as a failed test; and the same files, loaded by skops without the
check, are shown to crash, hang or change p(machine), so the refusals guard against something real.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, random_feature_table, tiny_detector_folder
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from detector.core.errors import ModelError
from detector.features.engine import FEATURE_NAMES
from detector.model.detector_model import CARD_FILE, DEFAULT_MODEL_DIR, MODEL_FILE, DetectorModel

N_FEATURES = len(FEATURE_NAMES)
FAR = 2**40  # an index far past any array: reading there is a segfault, not a quiet wrong value


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "rf": tiny_detector_folder(root / "rf", RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0)),
        "hgb": tiny_detector_folder(root / "hgb", HistGradientBoostingClassifier(max_iter=5, max_leaf_nodes=7)),
    }


# ------------------------------------------------------------------------------------------ crafting


def _first(schema, class_name: str) -> dict:
    """The first object of `class_name` in a skops schema (depth first)."""
    stack = [schema]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            if node.get("__class__") == class_name:
                return node
            stack[:0] = list(node.values())
        elif isinstance(node, list):
            stack[:0] = node
    raise LookupError(class_name)


def craft(source: Path, target: Path, edit) -> Path:
    """A copy of the model folder `source` whose skops file went through `edit(schema, arrays)`:
    schema is the parsed schema.json, arrays maps each .npy entry's name to its array (edit in place)."""
    shutil.copytree(source, target)
    with zipfile.ZipFile(source / MODEL_FILE) as zin:
        schema = json.loads(zin.read("schema.json"))
        arrays = {name: np.load(io.BytesIO(zin.read(name)), allow_pickle=False)
                  for name in zin.namelist() if name.endswith(".npy")}
    edit(schema, arrays)
    with zipfile.ZipFile(target / MODEL_FILE, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        zout.writestr("schema.json", json.dumps(schema))
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            zout.writestr(name, buffer.getvalue())
    return target


def _forest_nodes(schema, arrays) -> np.ndarray:
    """The first forest tree's node records (left_child, right_child, feature, threshold, ...)."""
    return arrays[_first(schema, "Tree")["content"]["content"]["nodes"]["file"]]


def _boosting_nodes(schema, arrays) -> np.ndarray:
    """The first gradient-boosting tree's node records (left, right, feature_idx, num_threshold, ...)."""
    return arrays[_first(schema, "TreePredictor")["content"]["content"]["nodes"]["file"]]


def _split(nodes: np.ndarray, leaf_field: str) -> int:
    """The last split node (its children are leaves or splits further down)."""
    leaves = nodes[leaf_field] == (-1 if leaf_field == "left_child" else 1)
    return int(np.flatnonzero(~leaves)[-1])


def _set(field: str, value, which: str = "root"):
    """An edit that sets `field` of the first tree's root (or last split node) to `value`."""
    def edit(schema, arrays):
        forest = "left_child" in _names(schema, arrays)
        nodes = _forest_nodes(schema, arrays) if forest else _boosting_nodes(schema, arrays)
        index = 0 if which == "root" else _split(nodes, "left_child" if forest else "is_leaf")
        nodes[field][index] = value
    return edit


def _names(schema, arrays) -> tuple[str, ...]:
    try:
        return _forest_nodes(schema, arrays).dtype.names
    except LookupError:
        return _boosting_nodes(schema, arrays).dtype.names


def _node_count(value: int):
    def edit(schema, arrays):
        count = _first(schema, "Tree")["content"]["content"]["node_count"]
        # skops shares equal small ints by id: a fresh id keeps the other trees' counts as they are.
        count.update(content=str(value), __id__=FAR + value)
    return edit


def _many_nodes(schema, arrays):
    """A first tree of 2**15 zero nodes (2 MiB unpacked, a few kB compressed): a zip bomb in small."""
    tree = _first(schema, "Tree")["content"]["content"]
    arrays[tree["nodes"]["file"]] = np.zeros(2**15, dtype=_forest_nodes(schema, arrays).dtype)


# (model, crafted file, the edit): the list, for both tree kinds where the field exists.
CRAFTS = {
    "rf-child-past-end": ("rf", _set("left_child", FAR)),
    "rf-child-just-past-end": ("rf", _set("right_child", 10_000)),
    "rf-one-child-a-leaf": ("rf", _set("right_child", -1)),
    "rf-negative-feature": ("rf", _set("feature", -FAR)),
    "rf-feature-too-large": ("rf", _set("feature", N_FEATURES)),
    "rf-nan-threshold": ("rf", _set("threshold", np.nan)),
    "rf-huge-node-count": ("rf", _node_count(FAR)),
    "rf-node-count-too-small": ("rf", _node_count(1)),
    "rf-cycle": ("rf", _set("left_child", 0, which="last")),
    "hgb-child-past-end": ("hgb", _set("right", 2**31)),
    "hgb-negative-feature": ("hgb", _set("feature_idx", -FAR)),
    "hgb-feature-too-large": ("hgb", _set("feature_idx", N_FEATURES)),
    "hgb-nan-threshold": ("hgb", _set("num_threshold", np.nan)),
    "hgb-cycle": ("hgb", _set("left", 0, which="last")),
}


@pytest.fixture(scope="module")
def crafted(tiny_models, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("crafted")
    return {name: craft(tiny_models[kind], root / name, edit) for name, (kind, edit) in CRAFTS.items()}


# ------------------------------------------------------------------------------------------- running

# One interpreter imports once, then forks a child per model folder: the child loads it (through the
# project's loader when CHECK is 1, through skops alone when 0) and predicts p(machine) on random
# features. The parent prints one JSON line per folder: how the child ended ("exit" code, "signal"
# number or "hang") and what it printed ({"refused": message} or {"p": [...]}).
PROBE = r"""
import json, os, signal, sys, time
import numpy as np, pandas as pd, skops.io as sio
from detector.features.engine import FEATURE_NAMES
from detector.model.detector_model import DetectorModel, ModelError
table = pd.DataFrame(np.random.default_rng(7).normal(size=(64, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))

def child(folder):
    if sys.argv[1] == "1":
        try:
            classifier = DetectorModel.load(folder).classifier
        except ModelError as err:
            return {"refused": str(err)}
    else:
        path = folder + "/model.skops"
        classifier = sio.load(path, trusted=sio.get_untrusted_types(file=path))[1:]
    return {"p": classifier.predict_proba(table)[:, 1].tolist()}

for folder in sys.argv[2:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, json.dumps(child(folder)).encode())
        os._exit(0)
    os.close(write)
    deadline, status = time.monotonic() + 5, None  # a healthy tiny model answers in milliseconds
    while status is None and time.monotonic() < deadline:
        done, code = os.waitpid(pid, os.WNOHANG)
        status = code if done else time.sleep(0.05)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        ended = {"hang": True}
    else:
        ended = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"exit": os.WEXITSTATUS(status)}
    out = os.read(read, 1 << 20).decode()
    os.close(read)
    print(json.dumps({**ended, **(json.loads(out) if out else {})}), flush=True)
"""


def probe(folders: dict[str, Path], check: bool) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", PROBE, "1" if check else "0", *map(str, folders.values())],
                            capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(zip(folders, map(json.loads, result.stdout.splitlines()), strict=True))


@pytest.fixture(scope="module")
def checked(tiny_models, crafted) -> dict[str, dict]:
    return probe({**tiny_models, **crafted}, check=True)


@pytest.fixture(scope="module")
def unchecked(tiny_models, crafted) -> dict[str, dict]:
    return probe({**tiny_models, **crafted}, check=False)


def test_the_shipped_model_and_the_tiny_models_pass_the_check(checked):
    DetectorModel.load(DEFAULT_MODEL_DIR)
    for kind in ("rf", "hgb"):
        assert checked[kind]["exit"] == 0 and len(checked[kind]["p"]) == 64, checked[kind]


@pytest.mark.parametrize("name", CRAFTS)
def test_a_crafted_file_is_refused_in_one_line_and_the_process_lives_on(checked, name):
    answer = checked[name]
    assert answer.get("exit") == 0, answer  # no signal, no hang
    assert "\n" not in answer["refused"] and "refusing a malformed model" in answer["refused"], answer
    assert "p" not in answer


def test_the_refusals_say_what_is_wrong(checked):
    assert "outside the tree" in checked["rf-child-past-end"]["refused"]
    assert "one child marked as a leaf" in checked["rf-one-child-a-leaf"]["refused"]
    assert "feature index" in checked["rf-negative-feature"]["refused"]
    assert "feature index" in checked["hgb-feature-too-large"]["refused"]
    assert "NaN" in checked["rf-nan-threshold"]["refused"]
    assert "declares 1099511627776 nodes and stores" in checked["rf-huge-node-count"]["refused"]
    assert "declares 1 nodes and stores" in checked["rf-node-count-too-small"]["refused"]
    assert "before its parent" in checked["rf-cycle"]["refused"]


def test_without_the_check_the_crafted_files_crash_hang_or_change_p_machine(unchecked):
    """The crafts are real threats: loaded by skops alone, prediction does not survive them unchanged."""
    harmed = {}
    for name, (kind, _) in CRAFTS.items():
        answer = unchecked[name]
        harmed[name] = ("signal" in answer or "hang" in answer
                        or ("p" in answer and not np.allclose(answer["p"], unchecked[kind]["p"])))
    # These never survive: a far read segfaults, a cycle loops, a NaN threshold sends every row right.
    for name in ("rf-child-past-end", "rf-cycle", "rf-nan-threshold", "hgb-cycle"):
        assert harmed[name], (name, unchecked[name])
    assert "signal" in unchecked["rf-child-past-end"] and "hang" in unchecked["rf-cycle"]


def test_the_cli_refuses_a_crafted_file_with_exit_2_and_one_line(crafted, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("A short text that is never scored, since the model is refused first.\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "detector_cli", "score", "--model",
                             str(crafted["rf-child-past-end"]), str(text)],
                            capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing a malformed model" in lines[0], result.stderr


def test_a_model_whose_scaler_or_calibration_holds_nan_is_refused(tiny_models, tmp_path):
    model = DetectorModel.load(tiny_models["rf"])
    scale = model.pipeline.named_steps["scale"]
    scale.scale_ = scale.scale_.copy()
    scale.scale_[3] = np.nan
    model.save(tmp_path / "scale")
    with pytest.raises(ModelError, match="scale_: holds NaN"):
        DetectorModel.load(tmp_path / "scale")

    model = DetectorModel.load(tiny_models["rf"])
    model.pipeline.named_steps["classify"].calibrated_classifiers_[0].calibrators[0].a_ = float("inf")
    model.save(tmp_path / "calibration")
    with pytest.raises(ModelError, match="a_: not a finite number"):
        DetectorModel.load(tmp_path / "calibration")

    model = DetectorModel.load(tiny_models["rf"])
    model.pipeline.named_steps["classify"].classes_ = np.array([1, 0])
    model.save(tmp_path / "classes")
    with pytest.raises(ModelError, match=r"expected \[0, 1\]"):
        DetectorModel.load(tmp_path / "classes")
    assert (tmp_path / "classes" / CARD_FILE).exists()


def test_a_file_that_unpacks_past_the_bound_is_refused_before_skops_reads_it(tiny_models, tmp_path, monkeypatch):
    import detector.model.skops_file

    folder = craft(tiny_models["rf"], tmp_path / "bomb", _many_nodes)
    monkeypatch.setattr(detector.model.skops_file, "MAX_UNPACKED_BYTES", 2**20)  # 1 MiB stands for 2 GiB
    with pytest.raises(ModelError, match="unpacks to 0.0 GiB, over the 0 GiB"):
        DetectorModel.load(folder)


OTHER_CLASSIFIERS = [LogisticRegression(max_iter=1000), ExtraTreesClassifier(n_estimators=3, max_depth=3)]


@pytest.mark.parametrize("estimator", OTHER_CLASSIFIERS, ids=["logreg", "extra-trees"])
def test_the_other_classifiers_a_recipe_can_hold_pass_the_check(tmp_path, estimator):
    model = DetectorModel.load(tiny_detector_folder(tmp_path / "model", estimator))
    assert model.p_machine_from_features(random_feature_table(8, 3)).shape == (8,)


def test_a_model_whose_novelty_file_is_crafted_is_refused_with_a_model_error(tiny_models, tmp_path):
    folder = tmp_path / "novel"
    shutil.copytree(tiny_models["rf"], folder)
    np.savez(folder / "novelty.npz", features=np.array(["logp_mean"]), center=np.zeros(1), scale=np.ones(1),
             reference=np.zeros((5, 2)), k=10, cut=1.0)  # rows wider than the features: a crash when scoring
    with pytest.raises(ModelError, match="reference not rows of 1 features"):
        DetectorModel.load(folder)
