"""The settings every command takes its choices from, error lines and terminal-safe text."""

from __future__ import annotations

import io
import json
import os

import pytest

from detector.core import settings
from detector.core.errors import ModelError, printable
from detector.io import report


def test_the_cli_takes_its_lm_choices_from_the_settings():
    from detector_cli.main import build_parser

    score = build_parser()._subparsers._group_actions[0].choices["score"]
    options = {action.dest: action for action in score._actions}
    assert tuple(options["engine"].choices) == settings.ENGINES
    assert tuple(options["dtype"].choices) == settings.DTYPES
    assert settings.DEFAULT_ENGINE in settings.ENGINES and settings.DEFAULT_DTYPE in settings.DTYPES


def test_the_tracking_store_is_a_parameter_not_the_environment(tmp_path, monkeypatch):
    from detector import Detector

    monkeypatch.delenv(settings.TRACKING_URI_ENV, raising=False)
    store = f"sqlite:///{tmp_path / 'nowhere.db'}"
    with pytest.raises(ModelError, match="nowhere.db"):
        Detector.load("models:/tiny/1", tracking_uri=store)
    assert settings.TRACKING_URI_ENV not in os.environ


def test_first_line_of_an_error():
    from detector.core.errors import first_line

    assert first_line(ValueError("bad thing\nmore detail")) == "bad thing"
    assert first_line(ValueError("x" * 300), 10) == "x" * 10
    assert first_line(OSError()) == "OSError"  # an empty message names the error instead of raising


def test_terminal_output_escapes_control_characters():
    assert printable("a\x1b[31mb\x9b\u202ec") == "a\\x1b[31mb\\x9b\\u202ec"
    out = io.StringIO()
    report.write_table([{"source": "x\x1b[2J.txt", "error": "bad \x1b]0;title\x07"}], out)
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert "\x9b" not in report._dumps({"s": "\x9b"}) and json.loads(report._dumps({"s": "\x9b"}))["s"] == "\x9b"
