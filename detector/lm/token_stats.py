"""Per-token statistics of a text under a causal language model.

One LM forward pass yields everything the detector needs; every feature, zero-shot baseline,
per-sentence score and heatmap is a function of a `TokenStats`, so nothing ever needs a second pass.
The statistics are computed by the engines (detector/lm/torch_engine.py, detector/lm/openvino_engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Bump when the meaning of the arrays changes: it is part of the cache key.
STATS_VERSION = 3  # 3: the actual token's logit in float32 over a (possibly bf16) body and head

FIELDS = ("logp", "rank", "entropy", "var_logp", "start", "end")


@dataclass
class TokenStats:
    """Statistics of tokens 1..n of a text (each predicted from the tokens before it).

    logp      log p(x_t | x_<t) of the actual token
    rank      1-based rank of the actual token in the predictive distribution (1 = argmax)
    entropy   entropy of the predictive distribution, nats; E[log p] under the model = -entropy
    var_logp  variance of log p under the model's own distribution (Fast-DetectGPT's analytic score)
    start/end character span of the token in the scored text (for sentence scores and heatmaps)
    """

    logp: np.ndarray
    rank: np.ndarray
    entropy: np.ndarray
    var_logp: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def __len__(self) -> int:
        return len(self.logp)

    def to_bytes(self) -> bytes:
        """Serialise as raw little-endian arrays (no pickle): n, then each field in FIELDS order."""
        n = np.array([len(self)], dtype="<i8").tobytes()
        floats = [getattr(self, f).astype("<f4").tobytes() for f in FIELDS[:4]]
        ints = [getattr(self, f).astype("<i4").tobytes() for f in FIELDS[4:]]
        return n + b"".join(floats + ints)

    @classmethod
    def from_bytes(cls, blob: bytes) -> TokenStats:
        n = int(np.frombuffer(blob[:8], dtype="<i8")[0])
        arrays, offset = [], 8
        for field in FIELDS:
            dtype = "<f4" if field in FIELDS[:4] else "<i4"
            arrays.append(np.frombuffer(blob, dtype=dtype, count=n, offset=offset).copy())
            offset += 4 * n
        return cls(*arrays)

    def slice(self, lo: int, hi: int) -> TokenStats:
        return TokenStats(*(getattr(self, f)[lo:hi] for f in FIELDS))

    @classmethod
    def empty(cls) -> TokenStats:
        return cls(*(np.zeros(0, dtype=np.float32) for _ in FIELDS[:4]),
                   *(np.zeros(0, dtype=np.int32) for _ in FIELDS[4:]))
