"""LM engines: the OpenVINO statistics graph against torch, its cached IR, and engines kept apart in
stats keys and model cards."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from conftest import HUMAN_TEXT, SEED

from detector.core.errors import LMUnavailable
from detector.core.settings import DEFAULT_ENGINE, DEFAULT_LM
from detector.lm import openvino_engine
from detector.lm.engines import default_engine, known_stats_key, stats_key
from detector.lm.language_model import LanguageModel
from detector.lm.torch_engine import stats_from_logits
from detector.model.extractor import FeatureExtractor


def tiny_llama():
    """A small random Llama: the graph's arithmetic checked in a second, without the real LM."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # logits of a realistic spread, not the near-ties of a fresh init
        model.lm_head.weight.mul_(60)
    return model


def test_statistics_graph_computes_what_torch_computes(tmp_path):
    model = tiny_llama()
    ir = openvino_engine.build_ir(model, tmp_path / "ir")
    assert ir.exists() and ir.with_suffix(".bin").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ir"]  # written under a temporary name, then renamed
    seq = torch.randint(0, 96, (40,)).tolist()
    got = openvino_engine.OpenVINOStats(ir, "float32", threads=1)(seq)
    with torch.no_grad():
        ids = torch.tensor([seq])
        hidden = model.model(input_ids=ids).last_hidden_state[0, :-1]
        weight = model.lm_head.weight
        targets = ids[0, 1:]
        want = stats_from_logits(hidden @ weight.T, targets, (hidden * weight[targets]).sum(-1))
    for key in ("logp", "entropy", "var_logp"):
        assert np.allclose(got[key], want[key].numpy(), atol=2e-4), key
    # the actual token's own logit may round either side of its exact value: rank within one
    assert np.abs(got["rank"] - want["rank"].numpy()).max() <= 1
    assert (got["rank"] >= 1).all() and len(got["logp"]) == len(seq) - 1


@pytest.fixture(scope="module")
def openvino_lm():
    return LanguageModel(engine="openvino")


def test_openvino_statistics_match_torch_float32(openvino_lm):
    texts = [SEED.read_text(encoding="utf-8")[:1500], HUMAN_TEXT]
    reference = LanguageModel(engine="torch", dtype="float32").token_stats(texts)
    exact = LanguageModel(engine="openvino", dtype="float32").token_stats(texts)
    fast = openvino_lm.token_stats(texts)  # bfloat16
    for ref, f32, bf16 in zip(reference, exact, fast, strict=True):
        assert np.array_equal(ref.start, bf16.start) and len(ref) == len(f32) == len(bf16)
        # float32 against float32: the same numbers up to summation order
        assert np.abs(f32.logp - ref.logp).max() < 1e-3 and np.abs(f32.entropy - ref.entropy).max() < 1e-3
        # bfloat16 body and head, float32 logit of the actual token: as close as torch's bfloat16
        assert abs(bf16.logp.mean() - ref.logp.mean()) < 0.03
        assert abs(bf16.entropy.mean() - ref.entropy.mean()) < 0.03
        assert np.median(np.abs(bf16.logp - ref.logp)) < 0.05
        assert np.abs(bf16.logp - ref.logp).max() < 0.5


def test_the_graph_is_cached_and_reused_without_torch(openvino_lm, monkeypatch):
    import detector.lm.language_model as lm_module
    from detector.core.settings import CACHE_DIR

    folder = openvino_engine.ir_folder(CACHE_DIR / "lm", openvino_lm.revision)
    assert (folder / openvino_engine.IR_FILE).exists() and openvino_lm.model is None

    def refuse(*args, **kwargs):
        raise AssertionError("the graph was rebuilt or the torch model loaded although the IR is cached")

    monkeypatch.setattr(openvino_engine, "build_ir", refuse)
    monkeypatch.setattr(lm_module, "load_torch", refuse)
    again = LanguageModel(engine="openvino")
    assert np.array_equal(again.token_stats([HUMAN_TEXT])[0].logp, openvino_lm.token_stats([HUMAN_TEXT])[0].logp)


def test_the_real_lm_scores_many_windows_side_by_side_to_the_same_bit():
    """A batch large enough for the parallel graph (streams of one thread) gives each text the statistics
    it gets scored alone on the latency graph (all threads on one window)."""
    import json

    from conftest import MINI

    paragraphs = [json.loads(line)["text"] for line in MINI.read_text(encoding="utf-8").splitlines() if line]
    texts = [" ".join(paragraphs[i:] + paragraphs[:i]) for i in range(len(paragraphs))]
    lm = LanguageModel(engine="openvino", threads=2)
    together = lm.token_stats(texts)
    assert lm._stats_graph._parallel is not None  # the batch did run side by side
    assert sum(len(s) for s in together) >= openvino_engine.PARALLEL_MIN_TOKENS
    for text, stats in zip(texts, together, strict=True):
        alone = lm.token_stats([text])[0]
        for key in ("logp", "rank", "entropy", "var_logp"):
            assert np.array_equal(getattr(stats, key), getattr(alone, key)), key


def test_windows_side_by_side_give_the_statistics_of_one_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(openvino_engine, "PARALLEL_MIN_TOKENS", 0)
    ir = openvino_engine.build_ir(tiny_llama(), tmp_path / "ir")
    seqs = [list(range(3, n)) for n in (9, 40, 17, 64, 33, 5)]
    for dtype in ("float32", "bfloat16"):
        graph = openvino_engine.OpenVINOStats(ir, dtype, threads=2,
                                              compiled_cache=openvino_engine.compiled_cache_folder(ir))
        one_at_a_time = [graph(seq) for seq in seqs]
        assert graph._parallel is None and graph.streams == 2
        side_by_side = list(graph.many(seqs))
        assert graph._parallel is not None
        for alone, together in zip(one_at_a_time, side_by_side, strict=True):
            for key in alone:
                assert np.array_equal(alone[key], together[key]), (dtype, key)
    # a single thread, or too few tokens: one window at a time, no second graph
    single = openvino_engine.OpenVINOStats(ir, "float32", threads=1)
    assert single.streams == 1 and len(list(single.many(seqs))) == len(seqs) and single._parallel is None


def test_stats_keys_of_engines_differ():
    keys = {stats_key("rev", dtype, 512, engine=engine) for engine in ("torch", "openvino")
            for dtype in ("float32", "bfloat16")}
    assert len(keys) == 4
    assert known_stats_key(DEFAULT_LM, "bfloat16", 512, engine="torch") != known_stats_key(
        DEFAULT_LM, "bfloat16", 512, engine="openvino")
    assert FeatureExtractor().engine_name == DEFAULT_ENGINE


def test_unknown_engine_is_refused_and_the_default_falls_back_where_it_cannot_run():
    with pytest.raises(ValueError, match="unknown engine"):
        LanguageModel(engine="tensorrt")
    with pytest.raises(LMUnavailable, match="openvino engine runs float32 or bfloat16"):
        LanguageModel(engine="openvino", dtype="float16")
    # what only torch runs keeps working without naming an engine
    assert default_engine("cuda", "bfloat16") == default_engine("cpu", "float16") == "torch"
    assert default_engine("cpu", "bfloat16") == DEFAULT_ENGINE


def test_model_card_records_engine_and_warns_on_another_precision(default_detector, tmp_path):
    from detector.model.detector_model import DetectorModel

    # the shipped model predates the engine parameter: it leaves the engine open (Detector runs it on the
    # runtime measured fastest here) and was trained on the default engine
    shipped = DetectorModel.load()
    assert shipped.scoring_engine.engine is None and shipped.scoring_engine.engine_name == DEFAULT_ENGINE
    assert shipped.card.engine == f"{DEFAULT_ENGINE}-bfloat16"
    model = copy.deepcopy(default_detector.model)
    model.use_engine("torch", "bfloat16")
    saved = DetectorModel.load(model.save(tmp_path / "m"))
    assert saved.card.engine == "torch-bfloat16" == saved.engine
    with pytest.warns(UserWarning, match="another precision"):
        saved.use_engine(dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        saved.use_engine("openvino", "bfloat16")  # same precision: noted, no warning
    assert saved.check_engine() == "model trained on torch-bfloat16 statistics, scoring with openvino-bfloat16"


def test_the_compiled_graph_is_cached_per_configuration_and_gives_the_same_statistics(tmp_path):
    ir = openvino_engine.build_ir(tiny_llama(), tmp_path / "ir")
    cache = openvino_engine.compiled_cache_folder(ir)
    assert cache.parent == ir.parent  # keyed by the IR's folder: revision, OpenVINO version, GRAPH_VERSION
    seq = list(range(3, 40))

    def stats(dtype: str, compiled_cache=cache) -> dict[str, np.ndarray]:
        return openvino_engine.OpenVINOStats(ir, dtype, threads=1, compiled_cache=compiled_cache)(seq)

    compiled, loaded, fresh = stats("float32"), stats("float32"), stats("float32", None)
    blobs = sorted(cache.rglob("*.blob"))
    assert len(blobs) == 1  # written once, then loaded
    # a float32 blob is never served to bfloat16 (OpenVINO's own key would: it omits the precision)
    bf16_cached, bf16_fresh = stats("bfloat16"), stats("bfloat16", None)
    assert len(list(cache.rglob("*.blob"))) == 2
    for key in fresh:
        assert np.array_equal(compiled[key], fresh[key]) and np.array_equal(loaded[key], fresh[key]), key
        assert np.array_equal(bf16_cached[key], bf16_fresh[key]), key
