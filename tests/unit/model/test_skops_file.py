"""The model file runs no code: an exact allow-list, the alias table for older module paths, and what
a crafted file would do without them."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import SEED, one_error_line

from detector.core.errors import ModelError
from detector.model.detector_model import DEFAULT_MODEL_DIR, DetectorModel
from detector.model.skops_file import SAVED_NAMES, TRUSTED_TYPES, current_names, load_pipeline
from detector_cli.main import main


def craft_malicious_model(source: Path, target: Path, marker: Path, kind: str = "exec") -> Path:
    """A copy of a model folder whose skops schema builds builtins.exec(code) or os.system(cmd).

    The code only creates `marker`, so a test can see whether anything ran. skops' audit names the
    type (builtins.exec / os.system); an allow-list by prefix ("builtins.") would let it through.
    """
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "model_card.json", target / "model_card.json")
    code = {"exec": f"open({str(marker)!r}, 'w').write('ran')", "system": f"touch '{marker}'"}[kind]
    evil = {"__class__": kind, "__module__": "builtins" if kind == "exec" else "os",
            "__loader__": "ConstructorFromReduceNode",
            "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                        "content": [{"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
                                     "content": json.dumps(code), "is_json": True, "__id__": 1}]}}
    with zipfile.ZipFile(source / "model.skops") as zin:
        schema = json.loads(zin.read("schema.json"))
        extractor = schema["content"]["content"]["steps"]["content"][0]["content"][1]
        extractor["content"]["content"]["device"] = evil
        with zipfile.ZipFile(target / "model.skops", "w") as zout:
            for name in zin.namelist():
                zout.writestr(name, json.dumps(schema) if name == "schema.json" else zin.read(name))
    return target


def test_allow_list_is_exact_and_covers_the_shipped_model():
    import skops.io as sio

    assert not any(t.startswith("builtins.") or t.endswith(".") for t in TRUSTED_TYPES)
    shipped = current_names((DEFAULT_MODEL_DIR / "model.skops").read_bytes())
    assert set(sio.get_untrusted_types(data=shipped)) <= TRUSTED_TYPES


def test_saved_module_paths_are_mapped_whole_and_only_those_in_the_alias_table(tmp_path):
    import skops.io as sio

    # The shipped file was saved before the subpackages: it names the extractor by its old path.
    original = (DEFAULT_MODEL_DIR / "model.skops").read_bytes()
    assert "detector.extractor.FeatureExtractor" in sio.get_untrusted_types(data=original)
    assert "detector.model.extractor.FeatureExtractor" in sio.get_untrusted_types(data=current_names(original))
    assert set(SAVED_NAMES.values()) == {"detector.model.extractor"}
    # Every old path of the table maps; a path that only starts like one, or another module, does not.
    for old, module in [*((old, SAVED_NAMES[old]) for old in SAVED_NAMES), ("detector.extractor_x", None),
                        ("detector.lm", None)]:
        with zipfile.ZipFile(io.BytesIO(original)) as archive:
            text = archive.read("schema.json").decode().replace('"detector.extractor"', json.dumps(old))
            files = {info.filename: archive.read(info) for info in archive.infolist()}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as out:
            for name, body in files.items():
                out.writestr(name, text if name == "schema.json" else body)
        named = sio.get_untrusted_types(data=current_names(buffer.getvalue()))
        expected = f"{module or old}.FeatureExtractor"
        assert expected in named, (old, named)
        model = tmp_path / old
        shutil.copytree(DEFAULT_MODEL_DIR, model)
        (model / "model.skops").write_bytes(buffer.getvalue())
        if module is None:  # not in the table: refused by the allow-list, in one line
            with pytest.raises(ModelError, match=f"outside the allow-list: {old}.FeatureExtractor"):
                load_pipeline(model / "model.skops")
        else:
            assert load_pipeline(model / "model.skops").named_steps["features"].lm == "smollm2-135m-instruct"


def test_models_trained_here_load_under_the_allow_list(tiny_model_dir):
    import skops.io as sio

    assert set(sio.get_untrusted_types(file=tiny_model_dir / "model.skops")) <= TRUSTED_TYPES
    assert DetectorModel.load(tiny_model_dir).thresholds.machine > 0


@pytest.mark.parametrize("kind", ["exec", "system"])
@pytest.mark.parametrize("as_uri", [False, True])
def test_a_model_file_that_would_run_code_is_refused(tmp_path, capsys, kind, as_uri):
    marker = tmp_path / "ran"
    model = craft_malicious_model(DEFAULT_MODEL_DIR, tmp_path / "evil", marker, kind)
    # the crafted file does reach the code path: without the allow-list skops would run it
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=model / "model.skops")
    assert {"builtins.exec", "os.system"} & set(untrusted)
    target = model.as_uri() if as_uri else str(model)
    assert main(["score", str(SEED), "--model", target]) == 2
    line = one_error_line(capsys)
    assert "allow-list" in line and ("builtins.exec" in line or "os.system" in line)
    assert not marker.exists()


def test_the_crafted_file_really_runs_code_when_trusted(tmp_path):
    """Proof that the refusal above matters: trusting the named types executes the payload."""
    import skops.io as sio

    marker = tmp_path / "ran"
    model = craft_malicious_model(DEFAULT_MODEL_DIR, tmp_path / "evil", marker, "exec")
    data = current_names((model / "model.skops").read_bytes())  # the extractor under today's path
    sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("damage", ["card_json", "card_not_object", "card_no_thresholds", "random_skops",
                                    "empty_skops"])
def test_a_broken_model_folder_is_a_usage_error(tmp_path, capsys, damage):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    card = json.loads((folder / "model_card.json").read_text())
    if damage == "card_json":
        (folder / "model_card.json").write_text('{"feature_version": 1, "thr')
    elif damage == "card_not_object":
        (folder / "model_card.json").write_text("[1, 2]")
    elif damage == "card_no_thresholds":
        del card["thresholds"]
        (folder / "model_card.json").write_text(json.dumps(card))
    elif damage == "random_skops":
        (folder / "model.skops").write_bytes(os.urandom(2048))
    else:
        (folder / "model.skops").write_bytes(b"")
    assert main(["score", str(SEED), "--model", str(folder)]) == 2
    one_error_line(capsys)
    with pytest.raises(ModelError):
        DetectorModel.load(folder)


def test_an_unknown_registry_model_leaves_no_mlflow_db(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["score", str(SEED), "--model", "models:/nope/1"]) == 2
    assert "tracking store" in one_error_line(capsys)
    assert not (tmp_path / "mlflow.db").exists()
