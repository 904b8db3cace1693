"""Does tuning the scoring LM to the task pay on writing it was not tuned on? (issue 19)

DetectAnyLLM (Fu, Guo and Li, ACM MM 2025) fine-tunes a scoring LM with LoRA so that its analytic
Fast-DetectGPT criterion (Bao et al., ICLR 2024) moves towards 0 on human texts and towards a large target
(100 in their code) on machine texts ("direct discrepancy learning", DDL); they report large gains with
2.7B models on GPUs, tuned on 500 pairs for 5 epochs. This experiment asks the same of the detector's own
135M LM on 2 CPU cores, before any all-data LM pass is spent on it:

- tune LoRA adapters of SmolLM2-135M (float32 torch, the dequantised packaged GGUF) on texts of some
  datasets of ../shared/data only;
- measure the criterion's AUROC and TPR at 1% FPR (threshold on that set's own humans) before and after
  tuning, on datasets held out of the tuning, and on unseen texts of the tuning datasets;
- report the cost: seconds of tuning and tuned tokens per second.

    python -m experiments.lm_tuning                       # writes experiments/LM_TUNING.md
    python -m experiments.lm_tuning --tune essays,gpt3to4,tweets --held-out gpt2era,seqxgpt,webtext_snippets

Texts are read from ../shared/data and never written anywhere; only the figures are.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from detector.core.settings import DEFAULT_LM
from detector.lm.packaged import packaged_folder
from detector.lm.torch_engine import right_pad
from detector.text.normalize import normalize
from detector_bench import environment, markdown
from train.eval_metrics import auroc, tpr_at_fpr

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REPORT = Path(__file__).with_name("LM_TUNING.md")
EPS = 1e-6


def sample_texts(datasets: list[str], per_label: int, seed: int, exclude: set[str] = frozenset()) -> pd.DataFrame:
    """`per_label` human and machine texts of each dataset (id, text, label, dataset), drawn at random."""
    parts = []
    for name in datasets:
        rows = pd.read_json(DATA / f"{name}.jsonl", lines=True)[["id", "text", "label"]]
        rows = rows[~rows["id"].isin(exclude) & rows["text"].str.strip().astype(bool)]
        for _, group in rows.groupby("label"):
            parts.append(group.sample(min(per_label, len(group)), random_state=seed).assign(dataset=name))
    return pd.concat(parts, ignore_index=True)


def discrepancy(model, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The criterion of each right-padded row under `model` (differentiable, so the tuning can push it)."""
    return discrepancy_from_logits(model(input_ids=input_ids, attention_mask=mask).logits, input_ids, mask)


def discrepancy_from_logits(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The analytic Fast-DetectGPT criterion of each row, scoring and sampling model the same: summed over
    the row's tokens, (log p of the actual token - its expectation under the model) / sqrt(summed variance),
    as detector.features.zero_shot.fast_detectgpt computes it from token statistics, but in torch with gradients.

    logits : [B, T, V], position t predicting token t + 1; input_ids, mask : [B, T]."""
    logits = logits[:, :-1].float()
    targets = input_ids[:, 1:]
    scored = mask[:, 1:].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    probs = logprobs.exp()
    actual = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    expected = (probs * logprobs).sum(-1)
    variance = (probs * logprobs.square()).sum(-1) - expected.square()
    return ((actual - expected) * scored).sum(-1) / ((variance * scored).sum(-1).clamp_min(0) + EPS).sqrt()


def batches(ids: list[list[int]], size: int, pad: int):
    """Right-padded (input_ids, attention_mask) batches of `size` token lists, in order."""
    for start in range(0, len(ids), size):
        yield right_pad(ids[start : start + size], pad)


def tokenize(tokenizer, texts: pd.Series, max_tokens: int) -> list[list[int]]:
    """Each normalised text as the detector reads it: BOS, then at most `max_tokens` - 1 tokens."""
    bos = tokenizer.bos_token_id
    return [[bos, *tokenizer(normalize(t).text, add_special_tokens=False)["input_ids"][: max_tokens - 1]]
            for t in texts]


@torch.inference_mode()
def criterion(model, ids: list[list[int]], pad: int, batch_size: int = 8, desc: str = "scoring") -> np.ndarray:
    model.eval()
    out = [discrepancy(model, x, m).numpy() for x, m in tqdm(batches(ids, batch_size, pad), desc=desc,
                                                            total=-(-len(ids) // batch_size))]
    return np.concatenate(out)


def tune(model, ids: list[list[int]], labels: np.ndarray, *, pad: int, epochs: int, batch_size: int, lr: float,
         machine_target: float, seed: int) -> dict:
    """DDL: minimise |criterion - 0| on human texts and |criterion - machine_target| on machine texts."""
    torch.manual_seed(seed)
    order_rng = np.random.default_rng(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=lr)
    targets = torch.tensor(np.where(labels == 1, machine_target, 0.0), dtype=torch.float32)
    model.train()
    losses, started, tokens = [], time.perf_counter(), 0
    for epoch in range(epochs):
        order = order_rng.permutation(len(ids))
        steps = range(0, len(order), batch_size)
        for start in tqdm(steps, desc=f"tuning epoch {epoch + 1}/{epochs}"):
            rows = order[start : start + batch_size]
            input_ids, mask = right_pad([ids[r] for r in rows], pad)
            loss = (discrepancy(model, input_ids, mask) - targets[rows]).abs().mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            tokens += int(mask.sum())
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds,
            "loss_first_10": float(np.mean(losses[:10])), "loss_last_10": float(np.mean(losses[-10:]))}


def metrics(table: pd.DataFrame, column: str) -> pd.DataFrame:
    rows = []
    for name, part in table.groupby("dataset", sort=False):
        y, s = part["label"].to_numpy(), part[column].to_numpy()
        rows.append({"dataset": name, "auroc": auroc(y, s), "tpr_at_1fpr": tpr_at_fpr(y, s, 0.01)})
    return pd.DataFrame(rows).set_index("dataset")


def run(args: argparse.Namespace) -> str:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    folder = packaged_folder(DEFAULT_LM)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    tuning = sample_texts(args.tune, args.tune_per_label, args.seed)
    evaluation = sample_texts(args.tune + args.held_out, args.eval_per_label, args.seed + 1,
                              exclude=set(tuning["id"]))
    evaluation["role"] = np.where(evaluation["dataset"].isin(args.tune), "tuned on (unseen texts)", "held out")
    eval_ids = tokenize(tokenizer, evaluation["text"], args.eval_tokens)
    evaluation["before"] = criterion(model, eval_ids, pad, desc="criterion before tuning")

    model = get_peft_model(model, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.05,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    cost = tune(model, tokenize(tokenizer, tuning["text"], args.tune_tokens), tuning["label"].to_numpy(), pad=pad,
                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, machine_target=args.machine_target,
                seed=args.seed)
    evaluation["after"] = criterion(model, eval_ids, pad, desc="criterion after tuning")

    before, after = metrics(evaluation, "before"), metrics(evaluation, "after")
    roles = evaluation.groupby("dataset", sort=False)["role"].first()
    table = pd.DataFrame({
        "role": roles, "n": evaluation.groupby("dataset", sort=False).size(),
        "auroc_before": before["auroc"], "auroc_after": after["auroc"],
        "tpr_at_1fpr_before": before["tpr_at_1fpr"], "tpr_at_1fpr_after": after["tpr_at_1fpr"],
    }).reset_index()
    held = table[table["role"] == "held out"]
    return report(args, table, held, cost)


HEADER = """# Tuning the scoring LM to the task (DDL-style LoRA)

Regenerate: `python -m experiments.lm_tuning`, then the second fold with `--tune essays,gpt3to4,tweets
--held-out gpt2era,seqxgpt,webtext_snippets --append` (experiments/lm_tuning.py).

The criterion is the analytic Fast-DetectGPT discrepancy of SmolLM2-135M-Instruct (float32 torch) on each
text's first tokens, scoring and sampling model the same. LoRA adapters are tuned with DetectAnyLLM's direct
discrepancy loss (|d| on human texts, |d - target| on machine texts) on texts of the tuning datasets only;
every figure below is on other texts. `tpr_at_1fpr` uses a threshold on that set's own humans (an oracle:
what the ranking allows).
"""


def report(args: argparse.Namespace, table: pd.DataFrame, held: pd.DataFrame, cost: dict) -> str:
    """One fold's section: its settings, the table, the held-out means and the cost."""
    machine = environment.machine()
    settings = {k: getattr(args, k) for k in ("tune_per_label", "eval_per_label", "tune_tokens", "eval_tokens",
                                              "epochs", "batch_size", "lr", "rank", "machine_target", "seed")}
    return "\n".join([
        f"## Tuned on {', '.join(args.tune)}; held out {', '.join(args.held_out)}", "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}; commit {machine['commit']}. "
        f"Settings: `{json.dumps(settings)}`.", "",
        markdown.table(table), "",
        f"Mean over held-out datasets: AUROC {held['auroc_before'].mean():.3f} -> {held['auroc_after'].mean():.3f}, "
        f"TPR at 1% FPR {held['tpr_at_1fpr_before'].mean():.3f} -> {held['tpr_at_1fpr_after'].mean():.3f}.", "",
        f"Cost: {cost['seconds'] / 60:.1f} min of tuning for {cost['tokens']:,} tokens "
        f"({cost['tokens_per_s']:.0f} tuned tokens/s, forward and backward); loss {cost['loss_first_10']:.1f} over "
        f"the first 10 steps, {cost['loss_last_10']:.1f} over the last 10.", "",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    parser.add_argument("--tune", type=names, default=["gpt2era", "seqxgpt", "webtext_snippets"])
    parser.add_argument("--held-out", type=names, default=["essays", "gpt3to4", "tweets"])
    parser.add_argument("--tune-per-label", type=int, default=100, help="texts per dataset and label to tune on")
    parser.add_argument("--eval-per-label", type=int, default=100, help="texts per dataset and label to measure")
    parser.add_argument("--tune-tokens", type=int, default=128)
    parser.add_argument("--eval-tokens", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--machine-target", type=float, default=100.0, help="DetectAnyLLM's default target")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--append", action="store_true", help="add this fold to the report instead of starting it")
    args = parser.parse_args(argv)
    section = run(args)
    before = args.out.read_text(encoding="utf-8") if args.append and args.out.exists() else HEADER
    args.out.write_text(before + "\n" + section, encoding="utf-8")
    print(section)


if __name__ == "__main__":
    main()
