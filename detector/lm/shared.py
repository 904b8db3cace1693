"""The LMs loaded in this process: one per configuration, shared by every caller and thread."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from detector.lm.language_model import LanguageModel

# The LMs loaded in this process, one per configuration (the last SHARED_LMS used), each behind a Future:
# a load under way in another thread (detector.facade.ahead) is waited for, never repeated.
SHARED_LMS = 4
_shared: OrderedDict[tuple, Future] = OrderedDict()
_shared_lock = threading.Lock()


def shared_load(key: tuple, load: Callable[[], LanguageModel]) -> LanguageModel:
    """The LM of `key`, loaded with `load` in this thread unless loaded or being loaded in another one. A
    load that failed in another thread is tried again here, so its error is raised here, as without it."""
    while True:
        with _shared_lock:
            future = _shared.get(key)
            mine = future is None
            if mine:
                future = _shared[key] = Future()
                while len(_shared) > SHARED_LMS:
                    _shared.popitem(last=False)
            else:
                _shared.move_to_end(key)
        if not mine:
            try:
                return future.result()
            except Exception:  # noqa: BLE001 - failed in the other thread: load here, and raise here
                continue
        try:
            future.set_result(load())
        except BaseException as err:
            with _shared_lock:
                if _shared.get(key) is future:
                    del _shared[key]
            future.set_exception(err)
            raise
        return future.result()


def shared_lm(name: str, device: str, dtype: str, max_tokens: int, engine: str | None = None) -> LanguageModel:
    """One loaded LM per configuration and process."""
    return shared_load((name, device, dtype, max_tokens, engine),
                        lambda: LanguageModel(name, device=device, dtype=dtype, max_tokens=max_tokens, engine=engine))


def load_ahead(name: str, device: str, dtype: str, max_tokens: int, engine: str, texts: Sequence[str],
               stop: threading.Event) -> LanguageModel:
    """`shared_lm`, with the statistics of `texts` computed (`LanguageModel.score_ahead`) before the LM is
    handed to any other thread: one waiting for it then finds them done, not under way. Texts are only
    scored where this call loads the LM."""

    def load() -> LanguageModel:
        lm = LanguageModel(name, device=device, dtype=dtype, max_tokens=max_tokens, engine=engine)
        lm.score_ahead(texts, stop)
        return lm

    return shared_load((name, device, dtype, max_tokens, engine), load)
