"""From p(machine) to a verdict: thresholds, length bands, novelty, calibration profiles and their maths.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "Adaptation": "adaptation",
    "CRITERIA": "adaptation",
    "INPUTS": "adaptation",
    "MachineRows": "adaptation",
    "cross_fit": "adaptation",
    "fit_logistic": "adaptation",
    "inputs": "adaptation",
    "check_rate": "conformal",
    "conformal_rank": "conformal",
    "conformal_threshold": "conformal",
    "fpr_upper_bound": "conformal",
    "humans_for_confidence": "conformal",
    "length_thresholds": "conformal",
    "minimum_humans": "conformal",
    "too_few_message": "conformal",
    "MIN_AUROC": "lengths",
    "MIN_TOKENS": "lengths",
    "THRESHOLD_EDGES": "lengths",
    "length_band": "lengths",
    "reliability_by_length": "lengths",
    "reliable_length": "lengths",
    "NOVELTY_FEATURES": "novelty",
    "Novelty": "novelty",
    "CalibrationProfile": "profile",
    "model_identity": "profile",
    "with_machines": "profile",
    "build_profile": "profile_fit",
    "Thresholds": "thresholds",
    "threshold_for_fpr": "thresholds",
    "HUMAN": "verdict",
    "MACHINE": "verdict",
    "UNCERTAIN": "verdict",
    "decide": "verdict",
    "text_problem": "verdict",
    "verdict_rule": "verdict",
})
