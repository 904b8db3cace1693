"""A calibration profile: one user's thresholds, novelty rows, refit and provenance, for one model.

A profile is one JSON file: numbers, strings and lists, nothing that runs code. Every field is checked
on load; a file that is not a profile, is damaged, or was made for another model is refused with a
`ProfileError` (one line). How a profile is made from human texts: `detector.decision.profile_fit`; the promise
its thresholds keep: `detector.decision.conformal`. Pure numpy/scipy: no torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from detector.core.errors import BadAdaptation, InvalidField, ProfileError, first_line, printable
from detector.core.json_fields import Fields, is_number
from detector.decision.adaptation import Adaptation
from detector.decision.conformal import Band, Guarantee
from detector.decision.novelty import Novelty, novelty_rows
from detector.decision.thresholds import Thresholds

FORMAT = "mgt-detector-calibration-profile"
VERSION = 2  # 2: the ranking is refitted to the humans (detector.decision.adaptation); 1: thresholds only, still read
MAX_PROFILE_BYTES = 64 * 1024 * 1024


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
        except (InvalidField, BadAdaptation) as err:
            raise ProfileError(f"{shown}: broken calibration profile ({err})") from err

    @classmethod
    def from_json(cls, data: Any) -> CalibrationProfile:
        """Build from parsed JSON, checking every field's type and range (`InvalidField` says which failed)."""
        top = Fields(data, "profile")
        if top.get("format", str) != FORMAT:
            raise InvalidField(f"format is not {FORMAT!r}: another kind of file")
        version = top.get("version", int)
        if version not in (1, VERSION):
            raise InvalidField(f"version {version} is not 1 or {VERSION}; made by another detector version")
        model = Fields(top.get("model", dict), "model")
        identity = {k: model.get(k, str) for k in ("name", "trained", "digest")}
        th = Fields(top.get("thresholds", dict), "thresholds")
        by_length = th.get("by_length", list)
        for row in by_length:
            if not (isinstance(row, list) and len(row) == 3 and all(is_number(v) for v in row)):
                raise InvalidField("thresholds.by_length holds a row that is not [from_tokens, machine, borderline]")
        thresholds = Thresholds(th.probability("machine"), th.rate("machine_fpr"), th.probability("borderline"),
                                th.rate("borderline_fpr"), th.count("min_tokens"),
                                [[int(a), float(b), float(c)] for a, b, c in by_length])
        bands = []
        for i, raw in enumerate(top.get("bands", list)):
            band = Fields(raw, f"bands[{i}]")
            bands.append(Band(band.count("from_tokens"), band.count("n_humans"), band.probability("machine"),
                              band.probability("borderline"), band.get("set_on", str), band.count("humans_above"),
                              band.number("fpr_upper", nullable=True)))
        g = Fields(top.get("guarantee", dict), "guarantee")
        promise = Guarantee(g.count("n_humans"), g.rate("fpr"), g.count("humans_above"), g.number("fpr_upper"),
                            g.rate("confidence"), g.number("promisable_fpr"),
                            g.number("promisable_fpr_at_confidence"), g.count("humans_needed_at_confidence"),
                            g.get("note", str))
        novelty = Fields(top.get("novelty", dict), "novelty")
        features = novelty.get("features", list)
        rows = novelty.get("rows", list)
        if not all(isinstance(f, str) for f in features):
            raise InvalidField("novelty.features must be names")
        for row in rows:
            if not (isinstance(row, list) and len(row) == len(features) and all(is_number(v) for v in row)):
                raise InvalidField("novelty.rows holds a row that is not one number per novelty feature")
        share = top.number("machine_like_share", nullable=True)
        warnings_ = top.get("warnings", list)
        if not all(isinstance(w, str) for w in warnings_):
            raise InvalidField("warnings must be strings")
        machines = top.get("machines", dict, nullable=True)
        if machines is not None:
            checked = Fields(machines, "machines")
            machines = {"n": checked.count("n"), "tpr": checked.probability("tpr"),
                        "tpr_shipped": checked.probability("tpr_shipped")}
        adaptation, expected = None, None
        if version >= 2:
            raw = top.get("adaptation", dict, nullable=True)
            adaptation = None if raw is None else Adaptation.from_json(raw)
            expected = top.get("expected_tpr", dict, nullable=True)
            if expected is not None:
                expected = _expected_tpr(Fields(expected, "expected_tpr"))
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
            lines.append("ranking refitted to these humans (cross-fitted, detector.decision.adaptation): the "
                         "thresholds are set on out-of-fold scores, a cross-conformal promise (checked in "
                         "experiments/CALIBRATION.md of the source)")
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


def _expected_tpr(fields: Fields) -> dict[str, Any]:
    rates = fields.get("rates", dict)
    checked = Fields(rates, "expected_tpr.rates")
    out = {key: (None if rates[key] is None else checked.probability(key)) for key in rates}
    return {"on": fields.get("on", str), "n": fields.count("n"), "at_rule": fields.probability("at_rule"),
            "rates": out}


def with_machines(profile: CalibrationProfile, tpr: float, tpr_shipped: float, n: int) -> CalibrationProfile:
    """The profile with its TPR on the user's machine texts recorded."""
    return replace(profile, machines={"n": int(n), "tpr": float(tpr), "tpr_shipped": float(tpr_shipped)})


def engine_of(model: Any) -> str:
    try:
        return str(model.engine)
    except AttributeError:
        return ""


def _nan_to_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _finite(record: dict) -> dict:
    """NaN as null: profiles are strict JSON."""
    return {k: _nan_to_none(v) for k, v in record.items()}
