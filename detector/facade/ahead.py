"""A command's LM work started ahead: loaded, and its first texts scored, on a second thread while the
main thread imports scikit-learn and loads the classifier.

`detector score FILE` waits for two chains of about equal length: the imports and the classifier
(Python, holding the GIL) and the LM (OpenVINO reading its compiled graph, then a first inference that
sets up its kernels: native code that releases the GIL). One after the other they add up; here they run
side by side on two cores. `start` needs only the model card: the LM settings it records, the runtime
choice remembered for this machine and the stats cache. It decides nothing of its own: the LM is the
process's one shared LM of the settings the detector asks for (detector.lm.language_model.shared_lm, which waits for a
load under way here), its statistics are what `LanguageModel.token_stats` computes, kept until asked for,
and the language identifier is the one `detector.text.segments` loads. Whatever fails here is dropped without a
word: the main thread then does that step itself and fails, or not, as it would have without this.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import tqdm.auto  # noqa: F401  (both threads use it: imported before the second starts, never by both at once)

from detector.core.settings import CARD_FILE, DEFAULT_MODEL_DIR
from detector.lm import runtime
from detector.lm.engines import engine_name, known_stats_key
from detector.lm.packaged import PACKAGED
from detector.lm.shared import load_ahead
from detector.lm.stats_cache import StatsCache
from detector.text.normalize import normalize
from detector.text.segments import load_language_identifier

log = logging.getLogger(__name__)


def lm_settings(model: str | None, engine: str | None = None, dtype: str | None = None) -> dict | None:
    """The LM settings (the feature extractor's) a `Detector.load(model, engine=engine, dtype=dtype)` will
    score with, read from the model card of a model folder (None: the shipped one); None where they cannot
    be known without loading the model: a URI, a card that cannot be read, a packaged LM not asked for, or
    a runtime choice not yet made on this machine (that first use measures, in the main thread)."""
    folder = DEFAULT_MODEL_DIR if model is None else Path(model)
    if folder.is_file():  # as DetectorModel.load: a file names its folder
        folder = folder.parent
    try:
        card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        params, trained = dict(card["lm"]), str(card.get("engine") or "")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if engine is not None or dtype is not None:  # as DetectorModel.use_engine
        params.update({k: v for k, v in (("engine", engine), ("dtype", dtype)) if v is not None})
    elif runtime.decides_engine(params, trained):  # as DetectorModel.use_fastest_runtime
        choice = runtime.remembered_choice(params["lm"], params["dtype"], trained.rpartition("-")[0])
        if choice is None:
            return None
        params["engine"] = choice.engine
    if params.get("lm") not in PACKAGED:  # the stats key of other LMs needs the LM loaded
        return None
    return params


class Ahead:
    """The LM of `settings` loaded and `texts` scored on a thread of its own; `stop` it before the command
    returns (it waits for the step under way: at most one text's LM pass once the LM is loaded)."""

    def __init__(self, settings: dict, texts: Sequence[str]):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(settings, list(texts)), name="detector-ahead")
        self._thread.start()

    def _run(self, settings: dict, texts: list[str]) -> None:
        try:
            self._prepare(settings, texts)
        except BaseException as err:  # noqa: BLE001 - the main thread does the same step and reports it
            log.debug("work ahead stopped: %s", err)

    def _prepare(self, settings: dict, texts: list[str]) -> None:
        name, device, dtype, max_tokens = settings["lm"], settings["device"], settings["dtype"], settings["max_tokens"]
        engine = engine_name(settings.get("engine"), device, dtype)
        normalized = list(dict.fromkeys(normalize(t).text for t in texts))
        found = {}
        if settings.get("cache"):  # the texts the stats cache has need no LM (ScoringEngine looks them up)
            cache = StatsCache(None if settings["cache"] == "default" else settings["cache"])
            found = cache.get_many(known_stats_key(name, dtype, max_tokens, engine=engine), normalized)
            cache.close()
        missing = [t for t in normalized if t not in found]
        if missing and not self._stop.is_set():
            load_ahead(name, device, dtype, max_tokens, engine, missing, self._stop)
        if not self._stop.is_set():
            load_language_identifier()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def start(model: str | None, texts: Sequence[str], engine: str | None = None, dtype: str | None = None) -> Ahead | None:
    """Start the LM work of scoring `texts` with `model` (see `lm_settings`) ahead; None where it cannot."""
    settings = lm_settings(model, engine, dtype)
    if settings is None or settings.get("device") != "cpu":
        return None
    return Ahead(settings, texts)
