"""tools/import_graph.py: the rooms' import graph holds, and the script would notice if it did not."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from conftest import ROOT

spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
import_graph = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_graph)


def test_the_project_has_no_upward_edge_and_no_cycle():
    done = subprocess.run([sys.executable, "tools/import_graph.py"], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("detector ") and "-> (nothing)" in done.stdout.splitlines()[0]
    assert "ok: no forbidden edge, no cycle, no upward layer edge" in done.stdout
    assert "  integrations  [integrations, integrations.serve, integrations.serve.answers," in done.stdout


def test_an_upward_edge_and_a_cycle_are_reported(tmp_path):
    for room in import_graph.ALLOWED:
        (tmp_path / room).mkdir()
        (tmp_path / room / "__init__.py").write_text("")
    (tmp_path / "detector" / "a.py").write_text("def f():\n    from train import b\n")  # deferred still counts
    (tmp_path / "train" / "b.py").write_text("from detector import a\n")
    (tmp_path / "detector_bench" / "x.py").write_text("from detector_bench.y import Y\n")
    (tmp_path / "detector_bench" / "y.py").write_text("from typing import TYPE_CHECKING\n"
                                                      "if TYPE_CHECKING:\n    from detector_bench.x import X\n")
    (tmp_path / "analysis" / "plots.py").write_text("import train.b\n")  # shared, so it may import detector only
    (tmp_path / "train" / "c.py").write_text("from analysis import plots\n")  # allowed: a shared module
    lines, problems = import_graph.check(tmp_path)
    assert "shared module analysis.plots imports train.b (only detector allowed)" in problems
    assert not [p for p in problems if "train.c" in p]
    assert "forbidden edge: detector.a imports train.b" in problems
    assert "import cycle: detector_bench.x <-> detector_bench.y" in problems
    assert "import cycle: detector.a <-> train.b" in problems
    assert lines[1].startswith("train") and "detector (1)" in lines[1]


def test_an_upward_layer_edge_and_a_module_outside_the_layer_folders_are_reported(tmp_path):
    for room in import_graph.ALLOWED:
        (tmp_path / room).mkdir()
        (tmp_path / room / "__init__.py").write_text("")
    for folder in ("integrations/serve", "facade", "model", "io", "gadgets"):
        (tmp_path / "detector" / folder).mkdir(parents=True)
        (tmp_path / "detector" / folder / "__init__.py").write_text("")
    (tmp_path / "detector" / "integrations" / "__init__.py").write_text("")
    (tmp_path / "detector" / "integrations" / "serve" / "app.py").write_text("from detector.facade import detector\n")
    (tmp_path / "detector" / "facade" / "detector.py").write_text("from detector.model import trained\n")  # down
    (tmp_path / "detector" / "model" / "trained.py").write_text("def f():\n    from detector.io.record import F\n")
    (tmp_path / "detector" / "io" / "record.py").write_text("")
    (tmp_path / "detector" / "loose.py").write_text("")
    (tmp_path / "detector" / "gadgets" / "thing.py").write_text("")
    lines, problems = import_graph.check(tmp_path)
    assert "upward edge: detector.model.trained (model) imports detector.io.record (io)" in problems
    assert any(p.startswith("detector.loose is in no layer: move it into one of detector/{core,") for p in problems)
    assert any(p.startswith("detector.gadgets.thing is in no layer") for p in problems)
    fine = ("detector.integrations", "detector.facade", "upward edge: detector.integrations")
    assert not [p for p in problems if p.startswith(fine)]
    assert import_graph.layer_of("detector.integrations.serve.app") == "integrations"
    assert import_graph.layer_of("detector") == "facade"


def test_every_layer_exports_names_that_resolve_to_where_they_are_defined():
    import importlib
    import inspect

    for layer in import_graph.LAYERS:
        package = importlib.import_module(f"detector.{layer}")
        assert package.__all__ == sorted(package.__all__) and package.__all__, layer
        for name in package.__all__:
            value = getattr(package, name)
            assert not inspect.ismodule(value), (layer, name)
            defined = getattr(value, "__module__", None)
            if callable(value) and defined:  # classes and functions: exported from the layer they live in
                assert defined.startswith(f"detector.{layer}."), (layer, name, defined)


def test_a_command_group_that_fails_to_import_is_named_and_a_missing_room_is_not(monkeypatch, capsys):
    import importlib

    from detector_cli import main

    real = importlib.import_module

    def fake(name, *args):
        if name == "detector_cli.bench":
            raise ModuleNotFoundError("No module named 'sklearn'", name="sklearn")
        if name == "detector_cli.train":
            raise ModuleNotFoundError("No module named 'train'", name="train")  # the room is not installed
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    assert main._optional_groups() == []
    assert capsys.readouterr().err == ("detector: warning: the bench commands are unavailable: cannot import "
                                       "sklearn (No module named 'sklearn')\n")
