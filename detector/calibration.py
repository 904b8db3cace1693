"""Calibration to a user's own writing: verdict thresholds set on their human texts, with a stated guarantee.

The shipped thresholds were set on the development sets' humans; a teacher's essays or a forum's posts
are not those. A `CalibrationProfile` holds thresholds set on the user's own human texts by the split-
conformal rule: with n human scores, the threshold at rank ceil((n+1)(1-alpha)) of their sorted scores
calls a new human text `machine` (p > threshold) with probability at most alpha, over the draw of the
calibration texts, when the new text is exchangeable with them (Vovk et al.; Angelopoulos & Bates,
"A gentle introduction to conformal prediction", 2021). The realised rate of one profile varies around
that; its upper 95% bound is the Clopper-Pearson bound on the calibration humans above the threshold
(for a threshold at an order statistic this is exactly the 95% quantile of its false-positive rate).

A profile is one JSON file: numbers, strings and lists, nothing that runs code. Every field is checked
on load; a file that is not a profile, is damaged, or was made for another model is refused with a
`ProfileError` (one line). Pure numpy/scipy: no torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from detector.adaptation import Adaptation, BadAdaptation, MachineRows, cross_fit, inputs, nearest
from detector.errors import UserError, first_line, printable
from detector.lengths import THRESHOLD_EDGES
from detector.novelty import Novelty, novelty_rows
from detector.thresholds import Thresholds

FORMAT = "mgt-detector-calibration-profile"
VERSION = 2  # 2: the ranking is refitted to the humans (detector.adaptation); 1: thresholds only, still read
CONFIDENCE = 0.95  # of the binomial (Clopper-Pearson) bound
BORDERLINE_FPR = 0.05
# A warning when more of the "humans" than this lie above the model's own borderline threshold (which
# 5% of its validation humans exceed): humans of a domain the model never saw put ~20% even above its
# machine threshold (forum answers, issue 20), so only a majority says "these look like machine text".
MACHINE_LIKE_SHARE = 0.5
MAX_NOVELTY_ROWS = 5000  # the novelty reference grows by at most this many rows (distance cost)
MAX_PROFILE_BYTES = 64 * 1024 * 1024
# The refit's positives when the user brings no machine texts: this many of the model's shipped machine
# rows per calibration human (at least MIN_SHIPPED_MACHINES), the nearest to the humans in style first.
SHIPPED_MACHINES_PER_HUMAN = 3
MIN_SHIPPED_MACHINES = 500
EXPECTED_RATES = (0.01, 0.02, 0.05)  # the rates the profile states an expected TPR for
_EPS = 1e-9  # (n+1)(1-alpha) computed in floating point: 0.99 * 100 must count as 99, not 99.0000001


class CalibrationError(UserError):
    """The human texts cannot set thresholds for the rate asked (too few); the message says why."""


class ProfileError(UserError):
    """A calibration profile that cannot be used: not a profile, damaged, or made for another model."""


# ----------------------------------------------------------------------------------------- the guarantee


def minimum_humans(alpha: float) -> int:
    """The fewest human texts for which the conformal rank ceil((n+1)(1-alpha)) is at most n."""
    _check_rate(alpha, "alpha")
    return max(1, math.ceil(1 / alpha - 1 - _EPS))


def conformal_rank(n: int, alpha: float) -> int:
    """1-based rank, among n sorted human scores, of the split-conformal threshold for rate alpha."""
    return math.ceil((n + 1) * (1 - alpha) - _EPS)


def conformal_threshold(human_p: np.ndarray, alpha: float) -> float:
    """The score at the conformal rank: `p > threshold` calls at most alpha of exchangeable humans
    `machine`, in expectation. CalibrationError when there are too few scores for alpha."""
    scores = np.sort(np.asarray(human_p, dtype=float))
    needed = minimum_humans(alpha)
    if len(scores) < needed:
        raise CalibrationError(too_few_message(len(scores), alpha))
    return float(scores[conformal_rank(len(scores), alpha) - 1])


def fpr_upper_bound(n_above: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen as n_above of n."""
    from scipy.stats import beta

    if n <= 0:
        return 1.0
    if n_above >= n:
        return 1.0
    return float(beta.ppf(confidence, n_above + 1, n - n_above))


def promisable_rates(n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(expected, at `confidence`): the lowest false-positive rates n human texts can promise, the
    first by the conformal rule (1/(n+1)), the second with every one of them below the threshold."""
    return 1 / (n + 1), fpr_upper_bound(0, n, confidence)


def humans_for_confidence(alpha: float, confidence: float = CONFIDENCE) -> int:
    """Human texts needed to promise alpha at `confidence` (none above the threshold): about 3/alpha."""
    return math.ceil(math.log(1 - confidence) / math.log(1 - alpha))


def too_few_message(n: int, alpha: float) -> str:
    expected, _ = promisable_rates(n) if n else (1.0, 1.0)
    return (f"{n} usable human text(s) cannot set a threshold for {alpha:.2%} false positives: the "
            f"conformal rule needs at least {minimum_humans(alpha)} (the lowest rate {n} can promise is "
            f"{expected:.2%}); add human texts or ask a higher --fpr")


def _check_rate(rate: float, name: str) -> None:
    if not (isinstance(rate, (int, float)) and 0 < rate < 1):
        raise CalibrationError(f"{name} must be a rate between 0 and 1 (exclusive), not {rate!r}")


@dataclass
class Band:
    """The thresholds of one length band and what they were set on."""

    from_tokens: int
    n_humans: int  # human texts of this band
    machine: float
    borderline: float
    set_on: str  # "own" (this band's humans), or the band it borrowed from ("all lengths", "64+ tokens")
    humans_above: int  # calibration humans of this band above its machine threshold
    fpr_upper: float  # Clopper-Pearson upper bound on those (NaN for a borrowed threshold: no own humans)


@dataclass
class Guarantee:
    """What the human texts promise at the machine threshold, pooled over the bands."""

    n_humans: int
    fpr: float  # expected rate at most this (split conformal)
    humans_above: int
    fpr_upper: float  # upper `confidence` bound on the realised rate
    confidence: float
    promisable_fpr: float  # the lowest expected rate n can promise
    promisable_fpr_at_confidence: float
    humans_needed_at_confidence: int  # to promise `fpr` at `confidence`
    note: str  # one line for people


def length_thresholds(human_p: np.ndarray, n_tokens: np.ndarray, fpr: float, borderline_fpr: float,
                      min_tokens: int, edges: Sequence[int] = THRESHOLD_EDGES,
                      min_humans: int | None = None) -> tuple[Thresholds, list[Band]]:
    """Conformal thresholds for texts shorter than `edges[0]` and within each band `edges` start.

    A band with fewer than `min_humans` humans (default: the conformal minimum for `fpr`) keeps the
    thresholds of the band below, as `Thresholds.worst_group_by_length` does; the first band then uses
    all lengths. The guarantee holds band by band where a band has its own thresholds; a borrowed
    threshold was set on shorter texts, whose scores spread more (a looser, not a proven, promise).
    """
    human_p, n_tokens = np.asarray(human_p, dtype=float), np.asarray(n_tokens)
    least = max(minimum_humans(fpr), minimum_humans(borderline_fpr))
    if len(human_p) < least:
        raise CalibrationError(too_few_message(len(human_p), fpr))
    needed = max(least, min_humans or 0)
    starts = [int(min_tokens), *(int(e) for e in edges if e > min_tokens)]
    bands: list[Band] = []
    source: Band | None = None  # the last band whose thresholds were set on humans
    for lo, hi in zip(starts, [*starts[1:], np.inf], strict=True):
        inside = (n_tokens >= lo) & (n_tokens < hi)
        if inside.sum() >= needed or source is None:
            scores, set_on = (human_p[inside], "own") if inside.sum() >= needed else (human_p, "all lengths")
            machine, borderline = conformal_threshold(scores, fpr), conformal_threshold(scores, borderline_fpr)
            above = int((scores > machine).sum())
            band = Band(lo, int(inside.sum()), machine, borderline, set_on, above, fpr_upper_bound(above, len(scores)))
            source = band
        else:
            above = int((human_p[inside] > source.machine).sum())
            borrowed = f"{source.from_tokens}+ tokens" if source.set_on == "own" else source.set_on
            band = Band(lo, int(inside.sum()), source.machine, source.borderline, borrowed, above, float("nan"))
        bands.append(band)
    first = bands[0]
    thresholds = Thresholds(first.machine, fpr, first.borderline, borderline_fpr, int(min_tokens),
                            [[b.from_tokens, b.machine, b.borderline] for b in bands[1:]])
    return thresholds, bands


def guarantee(human_p: np.ndarray, n_tokens: np.ndarray, thresholds: Thresholds,
              confidence: float = CONFIDENCE) -> Guarantee:
    """The promise the calibration humans give at `thresholds`' machine rule, with its binomial bound."""
    human_p, n_tokens = np.asarray(human_p, dtype=float), np.asarray(n_tokens)
    n = len(human_p)
    machine = np.array([thresholds.for_length(int(t))[0] for t in n_tokens])
    above = int((human_p > machine).sum())
    upper = fpr_upper_bound(above, n, confidence)
    expected, at_confidence = promisable_rates(n, confidence)
    needed = humans_for_confidence(thresholds.machine_fpr, confidence)
    alpha = thresholds.machine_fpr
    note = (f"expected false-positive rate at most {alpha:.1%} on human texts like these ({n} set the thresholds, "
            f"{above} lie above); {confidence:.0%} upper bound {upper:.1%}")
    if n < needed:
        note += (f"; {n} are too few to promise {alpha:.1%} at {confidence:.0%} confidence (about {needed} needed; "
                 f"{n} can promise {at_confidence:.1%})")
    return Guarantee(n, alpha, above, upper, confidence, expected, at_confidence, needed, note)


def machine_like_share(human_p: np.ndarray, n_tokens: np.ndarray, shipped: Thresholds) -> float:
    """Share of the human texts above the model's own borderline threshold for their length."""
    human_p, n_tokens = np.asarray(human_p, dtype=float), np.asarray(n_tokens)
    if not len(human_p):
        return float("nan")
    borderline = np.array([shipped.for_length(int(t))[1] for t in n_tokens])
    return float(np.mean(human_p > borderline))


def machine_like_warning(share: float, shipped: Thresholds) -> str | None:
    """A warning when most of the "human" texts look like machine text to the model itself."""
    if not share > MACHINE_LIKE_SHARE:
        return None
    return (f"the human texts look machine-like: {share:.0%} score above the model's own borderline threshold "
            f"(which {shipped.borderline_fpr:.0%} of its validation humans exceed); if some are machine text, "
            "this profile lets machine text pass as human")


def model_identity(model: Any) -> dict[str, str]:
    """Name, training date and a digest of the model card (its thresholds, training data, features and
    LM): a profile made for one model is refused by any other."""
    card = model.card
    text = json.dumps(card.to_json(), sort_keys=True, default=_plain)
    return {"name": str(card.name), "trained": str(card.trained),
            "digest": hashlib.sha256(text.encode()).hexdigest()}


def texts_digest(texts: Sequence[str]) -> str:
    """sha256 over the texts in sorted order: the same set of texts, however ordered, gives one digest."""
    digest = hashlib.sha256()
    for text in sorted(texts):
        digest.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    return digest.hexdigest()


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ----------------------------------------------------------------------------------------- the profile


@dataclass
class CalibrationProfile:
    """Thresholds, novelty rows and provenance of one calibration, for one model."""

    name: str
    model: dict[str, str]  # model_identity of the model it was made for
    engine: str  # LM engine and precision of the scores (another precision shifts p(machine))
    thresholds: Thresholds
    bands: list[Band]
    guarantee: Guarantee
    novelty_features: list[str]
    novelty_rows: list[list[float]]  # the human texts' raw feature rows, added to the novelty reference
    provenance: dict[str, Any]  # n_texts, n_used, digest, created, fpr, alpha, humans
    machine_like_share: float
    warnings: list[str] = field(default_factory=list)
    machines: dict[str, Any] | None = None  # n, tpr on --machines texts
    adaptation: Adaptation | None = None  # the refit of the last stage (None: thresholds only, version 1)
    # TPR to expect at the profile's rule and at other rates, estimated out of fold: {"on", "n", "at_rule",
    # "rates": {"0.01": tpr or None, ...}}
    expected_tpr: dict[str, Any] | None = None

    # ----- applying

    def check_model(self, model: Any) -> None:
        """ProfileError unless `model` is the model this profile was made for."""
        identity = model_identity(model)
        if identity["digest"] != self.model.get("digest"):
            raise ProfileError(f"profile {printable(self.name)} was made for model {self.model.get('name')} "
                               f"trained {self.model.get('trained')} ({self.model.get('digest', '')[:12]}), not "
                               f"this one ({identity['name']} trained {identity['trained']}, "
                               f"{identity['digest'][:12]}): calibrate again with this model")

    def apply(self, model: Any) -> Any:
        """A copy of `model` (a DetectorModel) with this profile's thresholds, and its human texts added
        to the novelty reference; `model` itself is left as it was."""
        self.check_model(model)
        engine = getattr(model, "engine", "")
        if self.engine and engine and engine != self.engine:
            warnings.warn(f"profile {self.name} was set on {self.engine} scores, scoring with {engine}: another "
                          "engine or precision shifts p(machine) and the rate the profile promises", stacklevel=2)
        return model.with_rule(replace(self.thresholds), self.extend_novelty(model.novelty), self.adaptation)

    def extend_novelty(self, novelty: Novelty | None) -> Novelty | None:
        """The novelty check with this profile's human texts among its references: the user's own kind
        of writing is then not "unlike every human reference"."""
        if novelty is None or not self.novelty_rows:
            return novelty
        if list(novelty.features) != self.novelty_features:
            raise ProfileError(f"profile {printable(self.name)}: its novelty features are not the model's")
        rows = novelty_rows(np.asarray(self.novelty_rows, dtype=float), novelty.center, novelty.scale)
        return replace(novelty, reference=np.vstack([novelty.reference, rows]))

    # ----- disk

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "name": self.name, "model": self.model,
                "engine": self.engine, "thresholds": asdict(self.thresholds),
                "bands": [_finite(asdict(b)) for b in self.bands], "guarantee": asdict(self.guarantee),
                "novelty": {"features": self.novelty_features, "rows": self.novelty_rows},
                "provenance": self.provenance, "machine_like_share": _nan_to_none(self.machine_like_share),
                "warnings": self.warnings, "machines": self.machines,
                "adaptation": None if self.adaptation is None else self.adaptation.to_json(),
                "expected_tpr": self.expected_tpr}

    def save(self, path: str | Path) -> Path:
        """Write the profile to a new file (never replaces one)."""
        try:
            handle = open(path, "x", encoding="utf-8")  # noqa: SIM115
        except OSError as err:
            why = "already exists; not overwriting it" if isinstance(err, FileExistsError) else \
                f"cannot create ({err.strerror or err})"
            raise ProfileError(f"{path}: {why}") from err
        with handle:
            json.dump(self.to_json(), handle, indent=1, allow_nan=False)
            handle.write("\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> CalibrationProfile:
        """Read and check a profile file; ProfileError (one line) for anything that is not a valid one."""
        path = Path(path)
        shown = printable(str(path))
        try:
            if path.stat().st_size > MAX_PROFILE_BYTES:
                raise ProfileError(f"{shown}: not a calibration profile (larger than {MAX_PROFILE_BYTES >> 20} MiB)")
            data = json.loads(path.read_bytes())
        except ProfileError:
            raise
        except FileNotFoundError as err:
            raise ProfileError(f"{shown}: no such calibration profile") from err
        except (OSError, ValueError, RecursionError) as err:  # ValueError: JSON and decoding errors
            raise ProfileError(f"{shown}: not a readable calibration profile ({type(err).__name__}: "
                               f"{first_line(err, 120)})") from err
        try:
            return cls.from_json(data)
        except (_Invalid, BadAdaptation) as err:
            raise ProfileError(f"{shown}: broken calibration profile ({err})") from err

    @classmethod
    def from_json(cls, data: Any) -> CalibrationProfile:
        """Build from parsed JSON, checking every field's type and range (`_Invalid` says which failed)."""
        top = _Fields(data, "profile")
        if top.get("format", str) != FORMAT:
            raise _Invalid(f"format is not {FORMAT!r}: another kind of file")
        version = top.get("version", int)
        if version not in (1, VERSION):
            raise _Invalid(f"version {version} is not 1 or {VERSION}; made by another detector version")
        model = _Fields(top.get("model", dict), "model")
        identity = {k: model.get(k, str) for k in ("name", "trained", "digest")}
        th = _Fields(top.get("thresholds", dict), "thresholds")
        by_length = th.get("by_length", list)
        for row in by_length:
            if not (isinstance(row, list) and len(row) == 3 and all(_is_number(v) for v in row)):
                raise _Invalid("thresholds.by_length holds a row that is not [from_tokens, machine, borderline]")
        thresholds = Thresholds(th.probability("machine"), th.rate("machine_fpr"), th.probability("borderline"),
                                th.rate("borderline_fpr"), th.count("min_tokens"),
                                [[int(a), float(b), float(c)] for a, b, c in by_length])
        bands = []
        for i, raw in enumerate(top.get("bands", list)):
            band = _Fields(raw, f"bands[{i}]")
            bands.append(Band(band.count("from_tokens"), band.count("n_humans"), band.probability("machine"),
                              band.probability("borderline"), band.get("set_on", str), band.count("humans_above"),
                              band.number("fpr_upper", nullable=True)))
        g = _Fields(top.get("guarantee", dict), "guarantee")
        promise = Guarantee(g.count("n_humans"), g.rate("fpr"), g.count("humans_above"), g.number("fpr_upper"),
                            g.rate("confidence"), g.number("promisable_fpr"),
                            g.number("promisable_fpr_at_confidence"), g.count("humans_needed_at_confidence"),
                            g.get("note", str))
        novelty = _Fields(top.get("novelty", dict), "novelty")
        features = novelty.get("features", list)
        rows = novelty.get("rows", list)
        if not all(isinstance(f, str) for f in features):
            raise _Invalid("novelty.features must be names")
        for row in rows:
            if not (isinstance(row, list) and len(row) == len(features) and all(_is_number(v) for v in row)):
                raise _Invalid("novelty.rows holds a row that is not one number per novelty feature")
        share = top.number("machine_like_share", nullable=True)
        warnings_ = top.get("warnings", list)
        if not all(isinstance(w, str) for w in warnings_):
            raise _Invalid("warnings must be strings")
        machines = top.get("machines", dict, nullable=True)
        if machines is not None:
            checked = _Fields(machines, "machines")
            machines = {"n": checked.count("n"), "tpr": checked.probability("tpr"),
                        "tpr_shipped": checked.probability("tpr_shipped")}
        adaptation, expected = None, None
        if version >= 2:
            raw = top.get("adaptation", dict, nullable=True)
            adaptation = None if raw is None else Adaptation.from_json(raw)
            expected = top.get("expected_tpr", dict, nullable=True)
            if expected is not None:
                expected = _expected_tpr(_Fields(expected, "expected_tpr"))
        return cls(top.get("name", str), identity, top.get("engine", str), thresholds, bands, promise,
                   list(features), [[float(v) for v in row] for row in rows], top.get("provenance", dict),
                   share, list(warnings_), machines, adaptation, expected)

    # ----- for people

    def summary(self) -> list[str]:
        """Lines for the terminal: counts, thresholds per band, the guarantee, warnings."""
        prov = self.provenance
        lines = [f"profile {self.name}: {prov.get('n_used')} human texts used of {prov.get('n_texts')} given "
                 f"({prov.get('n_skipped')} unscored, too short or not judged), for at most "
                 f"{self.thresholds.machine_fpr:.1%} false positives"]
        for band in self.bands:
            upper = "" if math.isnan(band.fpr_upper) else f", {band.humans_above} above, bound {band.fpr_upper:.1%}"
            source = "set on its own humans" if band.set_on == "own" else f"from {band.set_on}"
            lines.append(f"  {band.from_tokens:>4}+ tokens: {band.n_humans:>5} humans, machine > {band.machine:.3f}, "
                         f"borderline > {band.borderline:.3f} ({source}{upper})")
        lines.append(f"guarantee: {self.guarantee.note}")
        if self.adaptation is not None:
            lines.append("ranking refitted to these humans (cross-fitted, detector.adaptation): the thresholds are "
                         "set on out-of-fold scores, a cross-conformal promise (checked in CALIBRATION.md)")
        if self.expected_tpr:
            rates = ", ".join(f"{float(rate):.0%}: " + ("n/a" if tpr is None else f"{tpr:.0%}")
                              for rate, tpr in self.expected_tpr["rates"].items())
            lines.append(f"expected TPR at this profile's rule {self.expected_tpr['at_rule']:.0%} ({rates} false "
                         f"positives), out of fold on {self.expected_tpr['on']}")
        if self.machines:
            lines.append(f"machine texts: {self.machines['n']} scored, {self.machines['tpr']:.1%} called machine "
                         f"by this profile (the model's own rule: {self.machines['tpr_shipped']:.1%})")
        lines += [f"warning: {w}" for w in self.warnings]
        return lines


def build_profile(name: str, model: Any, human_p: np.ndarray, n_tokens: np.ndarray, problems: Sequence[str],
                  novelty_rows: np.ndarray | None, texts: Sequence[str], fpr: float = 0.01,
                  borderline_fpr: float = BORDERLINE_FPR, humans: str = "", seed: int = 0,
                  features: Any = None, machines: Any = None, machine_tokens: np.ndarray | None = None,
                  adapt: bool = True) -> CalibrationProfile:
    """A profile from the human texts' scores (p(machine), tokens, text problems) under `model`.

    Only texts the verdict rule would judge set the thresholds (a score, no text problem, at least
    the model's `min_tokens`): the guarantee is about those. `novelty_rows` are their raw novelty
    feature rows (all texts given, in order; None when the model has no novelty check). `texts` are
    digested for the provenance (a benchmark without texts passes their ids).

    With `features` (the humans' feature table, in order) and `adapt`, the ranking is refitted to the
    humans against machine texts (`machines`, a feature table of the user's own with `machine_tokens`,
    and the model's shipped machine rows nearest the humans; `detector.adaptation`) and the thresholds
    are set on the humans' out-of-fold scores. Without machine texts of either kind: thresholds only.
    """
    _check_rate(fpr, "--fpr")
    _check_rate(borderline_fpr, "borderline fpr")
    if borderline_fpr <= fpr:
        borderline_fpr = min(0.5, 2 * fpr)  # the borderline rule must be looser than the machine rule
    human_p, n_tokens = np.asarray(human_p, dtype=float), np.asarray(n_tokens)
    shipped = model.thresholds
    judged = np.isfinite(human_p) & (n_tokens >= shipped.min_tokens) & (np.asarray(problems, dtype=object) == "")
    if judged.sum() < max(minimum_humans(fpr), minimum_humans(borderline_fpr)):
        raise CalibrationError(too_few_message(int(judged.sum()), fpr))
    scores, refit = human_p[judged], None
    if adapt and features is not None:
        refit = _refit(model, features.iloc[np.flatnonzero(judged)], scores, machines, machine_tokens, seed)
        if refit is not None:
            scores = refit.fit.human_p
    # A band gets thresholds of its own only with enough humans to promise `fpr` at CONFIDENCE (~300 at 1%):
    # the conformal threshold of 100 humans is their maximum, a noisy cut that gives away what the ranking catches.
    thresholds, bands = length_thresholds(scores, n_tokens[judged], fpr, borderline_fpr, shipped.min_tokens,
                                          min_humans=humans_for_confidence(fpr) if refit is not None else None)
    share = machine_like_share(human_p[judged], n_tokens[judged], shipped)
    warning = machine_like_warning(share, shipped)
    promise = guarantee(scores, n_tokens[judged], thresholds)
    features_: list[str] = []
    rows: list[list[float]] = []
    if novelty_rows is not None and model.novelty is not None:
        features_ = list(model.novelty.features)
        kept = np.asarray(novelty_rows, dtype=float)[judged]
        kept = kept[np.isfinite(kept).all(axis=1)]
        if len(kept) > MAX_NOVELTY_ROWS:
            kept = kept[np.sort(np.random.default_rng(seed).choice(len(kept), MAX_NOVELTY_ROWS, replace=False))]
        rows = kept.tolist()
    provenance = {"humans": humans, "n_texts": int(len(texts)), "n_used": int(judged.sum()),
                  "n_skipped": int(len(texts) - judged.sum()), "texts_digest": texts_digest(texts),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "fpr": fpr,
                  "alpha": fpr, "borderline_fpr": borderline_fpr, "confidence": CONFIDENCE}
    warnings_ = [w for w in (warning,) if w]
    if promise.n_humans < promise.humans_needed_at_confidence:
        warnings_.append(f"{promise.n_humans} human texts promise {fpr:.1%} false positives on average only, not "
                         f"at {CONFIDENCE:.0%} confidence (about {promise.humans_needed_at_confidence} needed)")
    profile = CalibrationProfile(name, model_identity(model), _engine_of(model), thresholds, bands, promise,
                                 features_, rows, provenance, share, warnings_)
    if refit is not None:
        profile.adaptation, profile.expected_tpr = refit.fit.adaptation, refit.expected(thresholds, scores)
    return profile


@dataclass
class _Refit:
    """A cross-fitted adaptation and the machine texts it was judged on."""

    fit: Any  # detector.adaptation.CrossFit
    machine_tokens: np.ndarray  # of the machine rows, in the fit's order
    estimated_on: np.ndarray  # which machine rows the expected TPR is estimated on (the user's, if any)
    on: str

    def expected(self, thresholds: Thresholds, human_scores: np.ndarray) -> dict[str, Any]:
        """Out-of-fold TPR at the profile's rule (by length) and at pooled thresholds for other rates."""
        machine_p = self.fit.machine_p[self.estimated_on]
        tokens = self.machine_tokens[self.estimated_on]
        rule = np.array([thresholds.for_length(int(t))[0] for t in tokens])
        rates: dict[str, float | None] = {}
        for rate in EXPECTED_RATES:
            enough = len(human_scores) >= minimum_humans(rate)
            rates[f"{rate:g}"] = (float(np.mean(machine_p > conformal_threshold(human_scores, rate)))
                                  if enough else None)
        return {"on": self.on, "n": int(len(machine_p)), "at_rule": float(np.mean(machine_p > rule)), "rates": rates}


def _refit(model: Any, humans: Any, human_p: np.ndarray, machines: Any, machine_tokens: np.ndarray | None,
           seed: int) -> _Refit | None:
    """Cross-fit the adaptation on the judged humans against the user's machines and the shipped rows
    nearest the humans; None when there are no machine texts of either kind."""
    import pandas as pd

    parts, tokens, own = [], [], []
    shipped: MachineRows | None = getattr(model, "machine_rows", None)
    if shipped is not None:
        table = shipped.table()
        take = nearest(_style(model, humans), _style(model, table),
                       max(MIN_SHIPPED_MACHINES, SHIPPED_MACHINES_PER_HUMAN * len(humans)))
        parts.append(table.iloc[take]), tokens.append(shipped.n_tokens[take]), own.append(np.zeros(len(take), bool))
    if machines is not None and len(machines):
        parts.append(machines.reset_index(drop=True)), tokens.append(np.asarray(machine_tokens))
        own.append(np.ones(len(machines), bool))
    if not parts:
        return None
    table = pd.concat(parts, ignore_index=True)
    machine_x = inputs(table, model.shipped_p_machine(table))
    usable = np.isfinite(machine_x).all(axis=1)
    own_rows = np.concatenate(own)[usable]
    fit = cross_fit(inputs(humans, human_p), machine_x[usable], seed=seed, own=own_rows)
    on = (f"your {int(own_rows.sum())} machine texts" if own_rows.any()
          else f"the model's {int(usable.sum())} shipped machine texts nearest your humans in style")
    return _Refit(fit, np.concatenate(tokens)[usable], own_rows if own_rows.any() else ~own_rows, on)


def _style(model: Any, table: Any) -> np.ndarray:
    """Rows in the model's novelty space (its style features, robustly scaled), or the refit's criteria."""
    from detector.adaptation import CRITERIA
    from detector.novelty import novelty_rows

    if model.novelty is not None:
        rows = table[list(model.novelty.features)].to_numpy(dtype=float)
        return np.nan_to_num(novelty_rows(rows, model.novelty.center, model.novelty.scale))
    rows = table[list(CRITERIA)].to_numpy(dtype=float)
    return np.nan_to_num((rows - np.nanmean(rows, axis=0)) / (np.nanstd(rows, axis=0) + 1e-9))


def _expected_tpr(fields: _Fields) -> dict[str, Any]:
    rates = fields.get("rates", dict)
    checked = _Fields(rates, "expected_tpr.rates")
    out = {key: (None if rates[key] is None else checked.probability(key)) for key in rates}
    return {"on": fields.get("on", str), "n": fields.count("n"), "at_rule": fields.probability("at_rule"),
            "rates": out}


def with_machines(profile: CalibrationProfile, tpr: float, tpr_shipped: float, n: int) -> CalibrationProfile:
    """The profile with its TPR on the user's machine texts recorded."""
    return replace(profile, machines={"n": int(n), "tpr": float(tpr), "tpr_shipped": float(tpr_shipped)})


def _engine_of(model: Any) -> str:
    try:
        return str(model.engine)
    except AttributeError:
        return ""


def _nan_to_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _finite(record: dict) -> dict:
    """NaN as null: profiles are strict JSON."""
    return {k: _nan_to_none(v) for k, v in record.items()}


# ----------------------------------------------------------------------------------------- checking


class _Invalid(ValueError):
    """One field of a profile is missing or wrong; the message names it."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Fields:
    """Typed access to a JSON object's fields, naming the field that is missing or wrong."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise _Invalid(f"{where} is not a JSON object")
        self.data, self.where = data, where

    def get(self, key: str, kind: type, nullable: bool = False) -> Any:
        if key not in self.data:
            raise _Invalid(f"{self.where}.{key} is missing")
        value = self.data[key]
        if value is None and nullable:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _Invalid(f"{self.where}.{key} is not a {kind.__name__}")
        return value

    def number(self, key: str, nullable: bool = False) -> float:
        if key not in self.data:
            raise _Invalid(f"{self.where}.{key} is missing")
        value = self.data[key]
        if value is None and nullable:
            return float("nan")
        if not _is_number(value):
            raise _Invalid(f"{self.where}.{key} is not a finite number")
        return float(value)

    def probability(self, key: str) -> float:
        value = self.number(key)
        if not 0 <= value <= 1:
            raise _Invalid(f"{self.where}.{key} = {value} is not a probability")
        return value

    def rate(self, key: str) -> float:
        value = self.number(key)
        if not 0 < value < 1:
            raise _Invalid(f"{self.where}.{key} = {value} is not a rate between 0 and 1")
        return value

    def count(self, key: str) -> int:
        value = self.get(key, int)
        if value < 0:
            raise _Invalid(f"{self.where}.{key} is negative")
        return value



# ----------------------------------------------------------------------------------------- scoring texts


def calibrate(detector: Any, humans: Sequence[str], name: str, fpr: float = 0.01,
              machines: Sequence[str] | None = None, source: str = "", batch_size: int = 16,
              progress: Any = None, adapt: bool = True) -> CalibrationProfile:
    """Score the human texts (and `machines`) once with `detector` (a `Detector` without a profile; the
    stats cache serves texts seen before) and build their profile: the ranking refitted to them unless
    `adapt` is False, and with `machines`, its TPR on them (out of fold where they trained the refit).
    `progress` (e.g. a tqdm bar) is advanced by the number of texts of each batch."""
    if getattr(detector, "profile", None) is not None:
        raise CalibrationError("calibrate with the model's own thresholds, not with another profile applied")
    _check_rate(fpr, "--fpr")
    model = detector.model
    scored = _score(detector, humans, batch_size, progress)
    other = _score(detector, machines, batch_size, progress) if machines else None
    profile = build_profile(name, model, scored.p, scored.n_tokens, scored.problems, scored.novelty_rows(model),
                            humans, fpr, humans=source, features=scored.table, adapt=adapt,
                            machines=None if other is None else other.table[other.p == other.p],
                            machine_tokens=None if other is None else other.n_tokens[other.p == other.p])
    if other is not None:
        if profile.adaptation is not None:  # the refit learned from them: judged out of fold
            tpr = profile.expected_tpr["at_rule"]
        else:
            tpr = float(np.mean(other.verdicts(profile.apply(model), profile.name) == "machine"))
        tpr_shipped = float(np.mean(other.verdicts(model) == "machine"))
        profile = with_machines(profile, tpr, tpr_shipped, len(machines))
    return profile


@dataclass
class _Scored:
    """What the verdict rule needs of a batch of texts, from one LM pass."""

    table: Any  # the feature table
    p: np.ndarray
    n_tokens: np.ndarray
    problems: list[str]

    def novelty_rows(self, model: Any) -> np.ndarray | None:
        return None if model.novelty is None else self.table[list(model.novelty.features)].to_numpy(dtype=float)

    def verdicts(self, model: Any, profile: str | None = None) -> np.ndarray:
        from detector.model import score_or_none
        from detector.verdict import verdict_rule

        novel = model.novelty_reasons(self.table)
        return np.array([verdict_rule(score_or_none(p), int(n), problem or None, model.thresholds, why, profile)[0]
                         for p, n, problem, why in zip(self.p, self.n_tokens, self.problems, novel, strict=True)])


def _score(detector: Any, texts: Sequence[str], batch_size: int, progress: Any) -> _Scored:
    import pandas as pd

    from detector.features import features_table
    from detector.verdict import text_problem

    tables, n_tokens, problems = [], [], []
    for start in range(0, len(texts), batch_size):
        analyses = detector.analyse(list(texts[start : start + batch_size]))
        tables.append(features_table(analyses))
        n_tokens += [len(a.stats) for a in analyses]
        problems += [text_problem(a.text) or "" for a in analyses]
        if progress is not None:
            progress.update(len(analyses))
    table = pd.concat(tables, ignore_index=True) if tables else features_table([])
    return _Scored(table, detector.model.p_machine_from_features(table), np.array(n_tokens, dtype=int), problems)
