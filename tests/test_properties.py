"""Property-based: arbitrary Unicode never crashes normalisation, text features, verdict checks, or the
input reader; the CLI on arbitrary bytes answers with a record or a one-line error."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.decision.verdict import text_problem
from detector.features.engine import FEATURE_NAMES, features_of
from detector.features.stylometry import STYLOMETRIC_FEATURES, stylometric_features
from detector.io.decoding import decode
from detector.lm.token_stats import TokenStats
from detector.text.normalize import normalize
from detector.text.segments import sentence_spans

any_text = st.text(st.characters(codec="utf-8"), max_size=400)


@given(any_text)
def test_normalize_is_total_and_idempotent(text):
    once = normalize(text)
    assert isinstance(once.text, str)
    assert normalize(once.text).text == once.text


@settings(deadline=None)  # the first example pays for loading py3langid's model and pysbd's rules
@given(any_text)
def test_text_features_never_crash(text):
    feats = stylometric_features(text)
    assert set(feats) == set(STYLOMETRIC_FEATURES)
    assert all(isinstance(v, float) and not math.isinf(v) for v in feats.values())
    all_feats = features_of(TokenStats.empty(), text)
    assert list(all_feats) == FEATURE_NAMES
    text_problem(text)
    for lo, hi in sentence_spans(text):
        assert 0 <= lo < hi <= len(text)


@given(st.binary(max_size=600))
def test_decode_answers_every_byte_string(raw):
    item = decode(raw, "x")
    assert (item.text is None) != (item.error is None)
    if item.error:
        assert "\n" not in item.error


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(any_text, min_size=1, max_size=3))
def test_cli_scores_arbitrary_unicode(tmp_path, capsys, texts):
    from detector_cli.main import main

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    code = main(["score", "--jsonl", str(src), "--format", "json", "-q"])
    out = capsys.readouterr()
    assert code in (0, 1)
    records = json.loads(out.out)
    assert len(records) == len(texts)
    for record in records:
        assert ("error" in record) or record["verdict"] in ("machine", "human", "uncertain")
    assert "Traceback" not in out.err
