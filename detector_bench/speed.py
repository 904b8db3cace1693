"""`detector bench --speed`: each LM engine side by side, in one run on the same texts.

For every engine and precision of the LM: tokens/s of its bare forward pass and of `Detector.score` end
to end (stats cache off), as ratios to the bare torch float32 forward of the same run (a loaded machine
slows every row alike, the ratios stay), plus its AUROC and perplexity on a fixed labelled dev subset
and the largest change of p(machine) against torch float32 on it; and the time to rebuild the default
model's statistics from all its data with an empty cache, projected from the measured rate; the runtime
choice a first use makes on this machine (detector/lm/runtime.py) and the start-up latency of one
`detector score FILE` (detector_bench/startup.py). Writes detector_bench/SPEED.md, results/speed.csv,
results/speed_accuracy.csv, results/runtime_choice.csv and results/startup.csv.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from detector import Detector
from detector.core.settings import DEFAULT_DTYPE, DEFAULT_ENGINE, DEFAULT_LM, DEFAULT_MAX_TOKENS
from detector.lm import runtime
from detector.lm.language_model import LanguageModel
from detector.model.prediction import score_or_nan
from detector.text.normalize import normalize
from detector_bench.environment import machine
from detector_bench.markdown import table as markdown_table
from detector_bench.startup import latency_table
from detector_bench.throughput import OtherLoad
from train import eval_metrics

# (engine, precision), the reference first.
CONFIGS = (("torch", "float32"), ("torch", "bfloat16"), ("openvino", "float32"), ("openvino", "bfloat16"))
REFERENCE = CONFIGS[0]
DEFAULT = (DEFAULT_ENGINE, DEFAULT_DTYPE)


def label(config: tuple[str, str]) -> str:
    name = f"{config[0]}-{config[1]}"
    return f"{name} (default)" if config == DEFAULT else name


def with_engine(detector: Detector, engine: str, dtype: str, **params) -> Detector:
    """A copy of `detector` whose LM runs on `engine` in `dtype` (the shared model is left as it is)."""
    model = copy.deepcopy(detector.model)
    model.set_lm(engine=engine, dtype=dtype, **params)
    return Detector(model)


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def speed_table(detector: Detector, texts: list[str], repeats: int = 2,
                configs: Sequence[tuple[str, str]] = CONFIGS) -> pd.DataFrame:
    """Bare forward and end-to-end tokens/s per engine; best of `repeats` interleaved rounds."""
    runs, n_tokens = {}, {}
    normalised = list(dict.fromkeys(normalize(t).text for t in texts))  # the texts the LM reads, once each
    for config in configs:
        engine_detector = with_engine(detector, *config, cache=None, progress=False)
        lm: LanguageModel = engine_detector.model.scoring_engine.language_model()
        batches = lm.input_batches(normalised)
        n_tokens[config] = sum(len(lm.tokenize(t)[0]) for t in normalised)
        runs[(config, "bare forward")] = lambda lm=lm, b=batches: lm.bare_forward(b)
        runs[(config, "Detector.score")] = lambda d=engine_detector: d.score(texts)
    for run in runs.values():  # warm-up: every shape once
        run()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):  # interleaved, so drift in machine load hits all alike
        for key, run in runs.items():
            best[key] = min(best[key], _timed(run))
    reference = n_tokens[configs[0]] / best[(configs[0], "bare forward")]
    rows = []
    for (config, what), seconds in best.items():
        rate = n_tokens[config] / seconds
        own_bare = n_tokens[config] / best[(config, "bare forward")]
        rows.append({"engine": label(config), "what": what, "tokens": n_tokens[config], "seconds": seconds,
                     "tokens_per_s": rate, "x_bare_float32": rate / reference, "share_of_own_bare": rate / own_bare})
    return pd.DataFrame(rows)


def accuracy_table(detector: Detector, dev: pd.DataFrame,
                   configs: Sequence[tuple[str, str]] = CONFIGS) -> pd.DataFrame:
    """Per engine on `dev` (text, label): AUROC, its change against the reference, the largest and mean
    |p - p_reference|, and the LM's perplexity over all scored tokens."""
    p, perplexity = {}, {}
    texts = dev["text"].tolist()
    for config in configs:
        engine_detector = with_engine(detector, *config, progress=True)
        analyses = engine_detector.analyse(texts)
        results = engine_detector.results(analyses)
        p[config] = np.array([score_or_nan(r.p_machine) for r in results], dtype=float)
        logp = np.concatenate([a.stats.logp for a in analyses])
        perplexity[config] = float(np.exp(-logp.mean()))
    y = dev["label"].to_numpy()
    reference_auroc = eval_metrics.auroc(y, p[configs[0]])
    rows = []
    for config in configs:
        change = np.abs(p[config] - p[configs[0]])
        auroc = eval_metrics.auroc(y, p[config])
        rows.append({"engine": label(config), "n": len(dev), "auroc": auroc, "auroc_change": auroc - reference_auroc,
                     "max_abs_change_p": float(np.nanmax(change)), "mean_abs_change_p": float(np.nanmean(change)),
                     "perplexity": perplexity[config]})
    return pd.DataFrame(rows)


def manifest_files(manifest: Path) -> list[Path]:
    """The data files a manifest samples from (the default model's data), resolved as train.data does."""
    spec = json.loads(Path(manifest).read_text())
    root = Path(manifest).resolve().parent.parent
    return [root / source["path"] for source in spec["sources"]]


def count_tokens(files: Sequence[Path], lm: LanguageModel, max_tokens: int = DEFAULT_MAX_TOKENS) -> tuple[int, int]:
    """(texts, LM tokens) of every text in `files`, each text counted up to `max_tokens`."""
    n_texts = n_tokens = 0
    for path in files:
        texts = pd.read_json(path, lines=True)["text"].dropna().astype(str).tolist()
        for start in range(0, len(texts), 2048):
            chunk = [normalize(t).text for t in texts[start : start + 2048]]
            n_tokens += sum(min(len(lm.tokenize(t)[0]), max_tokens) for t in chunk)
        n_texts += len(texts)
    return n_texts, n_tokens


def rebuild_projection(speed: pd.DataFrame, n_texts: int, n_tokens: int, files: Sequence[Path]) -> str:
    """One paragraph: hours to compute the statistics of all texts at each measured end-to-end rate."""
    end_to_end = speed[speed["what"] == "Detector.score"]
    hours = ", ".join(f"{row.engine} {n_tokens / row.tokens_per_s / 3600:.1f} h"
                      for row in end_to_end.itertuples())
    return (f"Rebuilding the default model from all of its data with an empty cache ({n_texts:,} texts in "
            f"{', '.join(p.name for p in files)}; {n_tokens:,} LM tokens, at most {DEFAULT_MAX_TOKENS} per text) "
            f"is an LM pass over every token, projected from this run's end-to-end rates: {hours} "
            f"(the classifier fits in seconds).")


def runtime_choice_table(choice: runtime.Choice) -> pd.DataFrame:
    """The runtime choice as measured now: each engine's rate on the snippet and its difference from the
    reference engine's statistics, against the tolerance."""
    rows = []
    for engine, rate in choice.tokens_per_s.items():
        diff = choice.differences[engine]
        rows.append({"engine": f"{engine}-{DEFAULT_DTYPE}", "snippet_tokens_per_s": rate,
                     "mean_abs_change_logp": diff["logp"], "mean_abs_change_entropy": diff["entropy"],
                     "within_tolerance": runtime.within_tolerance(diff), "chosen": engine == choice.engine})
    return pd.DataFrame(rows)


def chosen_projection(choice: runtime.Choice, n_tokens: int, rate: float) -> str:
    return (f"On the runtime this machine chooses ({choice.engine}-{DEFAULT_DTYPE}), at its end-to-end rate of "
            f"{rate:,.0f} tokens/s in the table above, the all-data LM pass takes {n_tokens / rate / 3600:.1f} h.")


def cpu_flags() -> str:
    """The CPU features the LM's precision rides on, as /proc/cpuinfo lists them."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8")
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return "CPU flags unknown"
    return ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in wanted)


def write_speed(out: Path, speed: pd.DataFrame, accuracy: pd.DataFrame, load: str, command: str,
                seed_verdicts: dict[str, str], projection: str, choice: pd.DataFrame, latency: pd.DataFrame,
                latency_load: str) -> Path:
    (out / "results").mkdir(parents=True, exist_ok=True)
    speed.to_csv(out / "results" / "speed.csv", index=False)
    accuracy.to_csv(out / "results" / "speed_accuracy.csv", index=False)
    choice.to_csv(out / "results" / "runtime_choice.csv", index=False)
    latency.to_csv(out / "results" / "startup.csv", index=False)
    facts = machine()
    lines = [
        "# LM engines side by side", "",
        f"Regenerate: `{command}`. Machine: {facts['cpu']} ({cpu_flags()}), {facts['cores']} cores, "
        f"torch {facts['torch']}; commit {facts['commit']}; {load}.", "",
        "Ratios are to the bare torch float32 forward pass of the same run (`x_bare_float32`) and to the "
        "engine's own bare forward (`share_of_own_bare`). torch's bare forward computes full logits at every "
        "position; openvino's graph always ends in the token statistics (no logits leave it), so its bare "
        "forward is that graph on the same windows. `Detector.score` normalises, tokenises, runs the LM and "
        "the token statistics, features, classifier, novelty check and verdicts (stats cache off). "
        "`(default)` marks detector.core.settings.DEFAULT_ENGINE, the reference the shipped model was trained on; "
        "the engine a plain `Detector()` runs on this machine is the runtime choice below.", "",
        markdown_table(speed, digits=2), "",
        "Accuracy of each engine with the shipped model on the fixed labelled dev subset (perplexity: the LM's, "
        "over all scored tokens of the subset):", "",
        markdown_table(accuracy, digits=4), "",
        "The seed: " + ", ".join(f"{k} `{v}`" for k, v in seed_verdicts.items()) + ".", "",
        projection, "",
        "## The runtime a first use chooses", "",
        "Each engine at the shipped model's precision scores a fixed snippet (detector/lm/runtime.py: one warm-up, "
        "best of 3); the fastest is kept only if its per-token statistics differ from the reference engine's "
        f"(the model card's) by at most {runtime.TOLERANCE['logp']} nats mean |change| of log p and of entropy "
        "(the tolerance and the differences it was derived from are in detector/lm/runtime.py), else the reference "
        "runs. Measured now (a first use remembers its result in the user cache):", "",
        markdown_table(choice, digits=4), "",
        "## Start-up latency", "",
        f"Each run a new process (detector_bench/startup.py), medians of the runs; {latency_load}. `python -c pass` is "
        "the floor every command pays on this machine as loaded; CPU seconds are user + system of the process.", "",
        markdown_table(latency, digits=2), "",
    ]
    path = out / "SPEED.md"
    path.write_text("\n".join(lines))
    return path


def run_speed(out: Path, texts: list[str], dev: pd.DataFrame, seed_text: str, command: str,
              data_files: Sequence[Path], repeats: int = 2) -> Path:
    detector = Detector()
    with OtherLoad() as other:
        speed = speed_table(detector, texts, repeats)
    accuracy = accuracy_table(detector, dev)
    seed_verdicts = {label(config): with_engine(detector, *config).score(seed_text)[0].verdict for config in CONFIGS}
    n_texts, n_tokens = count_tokens(data_files, detector.model.scoring_engine.language_model())
    choice = runtime.measure(DEFAULT_LM, DEFAULT_DTYPE, DEFAULT_ENGINE)
    end_to_end = speed[speed["what"] == "Detector.score"].set_index("engine")["tokens_per_s"]
    chosen_rate = end_to_end[label((choice.engine, DEFAULT_DTYPE))]
    projection = (rebuild_projection(speed, n_texts, n_tokens, data_files) + " "
                  + chosen_projection(choice, n_tokens, chosen_rate))
    with OtherLoad() as latency_load:
        latency = latency_table()
    return write_speed(out, speed, accuracy, other.describe(), command, seed_verdicts, projection,
                       runtime_choice_table(choice), latency, latency_load.describe())
