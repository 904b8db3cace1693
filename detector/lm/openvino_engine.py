"""The OpenVINO engine: the LM body, output layer and token statistics as one compiled graph.

At first use the torch LM body is converted to OpenVINO's IR and the output layer plus the reductions
over the vocabulary (log-normaliser, rank, entropy, Var[log p]) are appended as graph nodes, so a
window goes in as token ids and comes back as four [T] arrays: no [T, V] logits tensor ever reaches
Python. The IR (xml + bin: data, no code) is saved once in the user cache next to the dequantised
weights, written to a temporary folder and renamed, and read from there afterwards.

Precision is chosen when the IR is compiled: "bfloat16" runs the matrix products on the CPU's bf16
units; the logit of the actual token, which log p and the rank hinge on, is kept in float32 (nodes
marked precise), as the torch engine does.

Int8 weights (nncf weight compression, INT8_ASYM and INT8_SYM) were tried: no faster here (scoring is
prefill, bound by compute, and a CPU without AMX decompresses int8 weights to bf16) and the log p error
against float32 was 3x bfloat16's (median 0.065 against 0.021 nats), so the weights stay float32.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Bump when the graph below changes: part of the IR cache folder's name.
GRAPH_VERSION = 2
IR_FILE = "stats.xml"
PRECISION_HINTS = {"float32": "f32", "bfloat16": "bf16"}
# The CPU plugin keeps nodes with this runtime attribute in float32 under a bf16 or f16 hint (OpenVINO
# 2026.4 keeps these reductions in float32 even unmarked: the actual token's logit is within 1e-5 of
# float32 either way; the mark keeps it so). The IR does not keep the attribute, so such nodes are
# named with this prefix and marked again when loaded.
_KEEP_FLOAT32 = "precise_0"
_FLOAT32_PREFIX = "float32/"


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def version() -> str:
    import openvino

    return openvino.__version__.split("-")[0]


def ir_folder(cache_dir: Path, revision: str) -> Path:
    """Where the IR of LM `revision` lives: keyed by the revision, OpenVINO's version and GRAPH_VERSION
    (the precision is a compile option, so one IR serves every precision)."""
    digest = hashlib.sha256(revision.encode()).hexdigest()[:16]
    return cache_dir / "openvino" / f"{digest}-ov{version()}-g{GRAPH_VERSION}"


def _body_module(model):
    """The LM body as a module: ids [1, T] -> final hidden states of positions 0..T-2 [T-1, H]."""
    import torch

    class Body(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = model.get_decoder()

        def forward(self, input_ids):
            # An explicit all-ones mask: without one transformers probes the positions for packed
            # sequences with aten::diff, which OpenVINO cannot convert.
            out = self.body(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False)
            return out.last_hidden_state[0, :-1]

    return Body().eval()


def _keep_float32(*nodes) -> None:
    for node in nodes:
        node.set_friendly_name(f"{_FLOAT32_PREFIX}{node.get_friendly_name()}")


def _mark_float32(graph) -> int:
    """Mark the nodes named by `_keep_float32` for the plugin; how many."""
    marked = 0
    for node in graph.get_ordered_ops():
        if node.get_friendly_name().startswith(_FLOAT32_PREFIX):
            node.get_rt_info()[_KEEP_FLOAT32] = ""
            marked += 1
    return marked


def build_ir(model, folder: Path) -> Path:
    """Convert the torch LM `model` (float32) to the statistics graph and save it atomically in `folder`."""
    import openvino as ov
    import openvino.opset13 as ops
    import torch

    example = torch.arange(8, dtype=torch.long).unsqueeze(0)
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing fixes transformers' Python branches on shapes; windows always hold 2+ tokens, as the
        # example does, so those branches hold for every window: the warnings say nothing to a user.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        body = ov.convert_model(_body_module(model), example_input=(example,), input=[ov.PartialShape([1, -1])])
    body.inputs[0].get_tensor().set_names({"input_ids"})
    hidden = body.get_results()[0].input_value(0)  # what the body returns, without its Result node
    targets = ops.parameter([-1], np.int64, name="targets")  # the token each position predicts
    weight = ops.constant(model.get_output_embeddings().weight.detach().float().numpy())
    logits = ops.matmul(hidden, weight, transpose_a=False, transpose_b=True)
    # The actual token's logit from its own row of the output layer, in float32.
    rows = ops.gather(weight, targets, 0)
    product = ops.multiply(hidden, rows)
    target_logit = ops.reduce_sum(product, np.int64(-1), keep_dims=False)
    _keep_float32(rows, product, target_logit)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:  # Gemma-style models squash their logits
        cap_node = ops.constant(np.float32(cap))
        logits = ops.multiply(ops.tanh(ops.divide(logits, cap_node)), cap_node)
        scaled = ops.divide(target_logit, cap_node)
        squashed = ops.tanh(scaled)
        target_logit = ops.multiply(squashed, cap_node)
        _keep_float32(scaled, squashed, target_logit)
    # Everything over the vocabulary in float32 from the (bf16) logits, as the torch engine does.
    column = ops.unsqueeze(target_logit, np.int64(-1))
    greater = ops.greater(logits, column)
    count = ops.reduce_sum(ops.convert(greater, np.int32), np.int64(-1), keep_dims=False)
    rank = ops.add(count, ops.constant(np.int32(1)))
    top = ops.reduce_max(logits, np.int64(-1), keep_dims=True)
    shifted = ops.subtract(logits, top)
    total = ops.reduce_sum(ops.exp(shifted), np.int64(-1), keep_dims=True)
    log_total = ops.log(total)
    logprobs = ops.subtract(shifted, log_total)
    normaliser = ops.squeeze(ops.add(top, log_total), np.int64(-1))
    target_logp = ops.subtract(target_logit, normaliser)
    probs = ops.exp(logprobs)
    weighted = ops.multiply(probs, logprobs)  # p * log p
    mean_logp = ops.reduce_sum(weighted, np.int64(-1), keep_dims=False)
    squared = ops.multiply(weighted, logprobs)
    second_moment = ops.reduce_sum(squared, np.int64(-1), keep_dims=False)
    var_logp = ops.maximum(ops.subtract(second_moment, ops.multiply(mean_logp, mean_logp)),
                           ops.constant(np.float32(0)))
    _keep_float32(column, greater, count, top, shifted, total, log_total, logprobs, normaliser, target_logp,
                  probs, weighted, mean_logp, squared, second_moment, var_logp)
    outputs = {"logp": target_logp, "rank": rank, "entropy": ops.negative(mean_logp), "var_logp": var_logp}
    results = []
    for name, node in outputs.items():
        node.output(0).get_tensor().set_names({name})
        results.append(ops.result(node))
    graph = ov.Model(results, [body.get_parameters()[0], targets], "token_stats")

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    ov.save_model(graph, tmp / IR_FILE, compress_to_fp16=False)  # float32 weights: exact at every precision
    try:
        tmp.rename(folder)  # atomic: a half-written IR is never seen
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / IR_FILE


def compiled_cache_folder(ir: Path) -> Path:
    """Where OpenVINO keeps the compiled blobs of graph `ir`: inside the IR's folder, which is keyed by
    the LM revision, OpenVINO's version and GRAPH_VERSION, one sub-folder per compile configuration
    (`OpenVINOStats`). OpenVINO keys a blob by the graph and the device but not by the precision, while
    the blob's numbers depend on the precision it was first compiled in (a bfloat16 load of a float32
    blob differs from bfloat16 compiled anew: tests/integration/test_engines.py), so no two configurations share
    a folder and no blob is ever served for another configuration than its own."""
    return ir.parent / "compiled"


def _config_folder(base: Path, config: dict[str, str]) -> Path:
    digest = hashlib.sha256(repr(sorted(config.items())).encode()).hexdigest()[:12]
    return base / f"{config['INFERENCE_PRECISION_HINT']}-{config['INFERENCE_NUM_THREADS']}t-{digest}"


# Below this many tokens in one call the windows run one after the other on the latency graph: loading
# the parallel graph (its compiled blob, or compiling it at first use) costs more than it saves.
PARALLEL_MIN_TOKENS = 4096
# At most this many windows at once (one stream of one thread each).
MAX_STREAMS = 8


class OpenVINOStats:
    """A compiled statistics graph: token ids of one window in, its token statistics out.

    One window (`__call__`) runs on all `threads` at once: the shortest wait for one text. Many windows
    (`many`) run side by side, one window per thread (OpenVINO streams of one thread each), which keeps
    every core busy where one window on several threads leaves them waiting on each other (~20% more
    tokens/s on 2 cores). That second graph is compiled when first needed. Both give the same numbers
    to the bit (the kernels do not depend on the thread split: tests/integration/test_engines.py), so which one
    scored a text never shows in its statistics.

    With `compiled_cache` (see compiled_cache_folder), OpenVINO stores the compiled graphs there and later
    runs load them instead of compiling again (seconds at every start-up otherwise)."""

    def __init__(self, ir: Path, dtype: str, threads: int, compiled_cache: Path | None = None):
        if dtype not in PRECISION_HINTS:
            raise ValueError(f"the openvino engine runs float32 or bfloat16, not {dtype!r}")
        self._ir, self._dtype, self._compiled_cache = ir, dtype, compiled_cache
        self.threads = max(1, threads)
        self.compiled = self._compile(streams=1)
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: one window at a time
        self._parallel_compiled = None  # the parallel graph, compiled at the first `many` that pays
        self._parallel: queue.SimpleQueue | None = None  # its idle infer requests
        self._parallel_lock = threading.Lock()

    @property
    def streams(self) -> int:
        """How many windows `many` runs at once."""
        return min(self.threads, MAX_STREAMS)

    def _compile(self, streams: int):
        import openvino as ov

        config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[self._dtype],
                  "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
                  "NUM_STREAMS": str(streams), "INFERENCE_NUM_THREADS": str(self.threads)}
        core = ov.Core()
        if self._compiled_cache is not None:
            core.set_property({"CACHE_DIR": str(_config_folder(self._compiled_cache, config))})
        graph = core.read_model(str(self._ir))
        _mark_float32(graph)
        return core.compile_model(graph, "CPU", config)

    @staticmethod
    def _infer(request, seq: list[int]) -> dict[str, np.ndarray]:
        ids = np.asarray(seq, dtype=np.int64)
        result = request.infer({"input_ids": ids[None, :], "targets": ids[1:]})
        return {port.get_any_name(): np.array(value, dtype=np.float32) for port, value in result.items()}

    def __call__(self, seq: list[int]) -> dict[str, np.ndarray]:
        """Statistics of positions 0..len(seq)-2 of one window (each predicting the next token)."""
        with self._lock:
            return self._infer(self.request, seq)

    def many(self, seqs: list[list[int]]) -> Iterator[dict[str, np.ndarray]]:
        """`self(seq)` for each window, in order, computed `streams` at a time where that pays."""
        if self.streams < 2 or len(seqs) < 2 or sum(len(s) for s in seqs) < PARALLEL_MIN_TOKENS:
            yield from (self(seq) for seq in seqs)
            return
        idle = self._parallel_requests()

        def one(seq: list[int]) -> dict[str, np.ndarray]:
            request = idle.get()
            try:
                return self._infer(request, seq)
            finally:
                idle.put(request)

        with ThreadPoolExecutor(self.streams, thread_name_prefix="detector-lm") as pool:
            yield from pool.map(one, seqs)

    def _parallel_requests(self) -> queue.SimpleQueue:
        with self._parallel_lock:
            if self._parallel is None:
                compiled = self._compile(streams=self.streams)
                idle: queue.SimpleQueue = queue.SimpleQueue()
                for _ in range(self.streams):
                    idle.put(compiled.create_infer_request())
                self._parallel_compiled, self._parallel = compiled, idle
            return self._parallel
