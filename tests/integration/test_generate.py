"""`detector generate`: continuations of human prompts by the real default LM over the decoding grid."""

from __future__ import annotations

import json

import pytest
from conftest import MINI

from detector_cli.main import main
from train.data import load_spec

pytestmark = pytest.mark.slow  # generates with the real LM


def test_generate_writes_the_data_schema_with_decoding(tmp_path, capsys):
    out = tmp_path / "gen.jsonl"
    assert main(["generate", "--data", str(MINI), "--output", str(out), "--n", "3", "--new-tokens", "8"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and len({r["decoding"] for r in rows}) == 3  # one grid setting after another
    humans = load_spec(str(MINI))
    human_ids = set(humans.loc[humans["label"] == 0, "id"])
    for row in rows:
        assert row["label"] == 1 and row["generator"] == "smollm2-135m-instruct" and row["text"]
        assert row["pair_id"] in human_ids
    assert set(load_spec(str(out))["label"]) == {1}  # readable as a data spec
    before = out.read_bytes()
    assert main(["generate", "--data", str(MINI), "--output", str(out), "--n", "1"]) == 2
    assert out.read_bytes() == before and "exists" in capsys.readouterr().err
