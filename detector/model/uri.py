"""Load a model from wherever it lives: a folder, or an mlflow model URI (models:/, runs:/, ...)."""

from __future__ import annotations

from pathlib import Path

from detector.core.errors import ModelError, first_line
from detector.core.settings import DEFAULT_TRACKING_URI, TRACKING_URI_ENV
from detector.model.detector_model import CARD_FILE, DetectorModel


def load_model(location: str, tracking_uri: str | None = None) -> DetectorModel:
    """The model at `location`; models:/ and runs:/ URIs are looked up in `tracking_uri` (None:
    $MLFLOW_TRACKING_URI, else DEFAULT_TRACKING_URI)."""
    path = Path(location)
    if path.exists():
        found = path if (path / CARD_FILE).exists() or path.is_file() else _find_card(path)
        return DetectorModel.load(found)
    if ":/" in location:
        return DetectorModel.load(_find_card(_download(location, tracking_uri)))
    raise ModelError(f"{location}: no such model folder (nor an mlflow URI like models:/NAME/1)")


def _tracking_uri_for(uri: str, explicit: str | None = None) -> str | None:
    """The tracking store a models:/ or runs:/ URI is looked up in; None for plain artifact URIs.

    mlflow creates a sqlite store on first contact, so an empty mlflow.db would appear in the current
    folder just to say the model does not exist: a store that is not there is refused instead.
    """
    import os

    if not uri.startswith(("models:/", "runs:/")):
        return None
    configured = explicit or os.environ.get(TRACKING_URI_ENV)
    tracking = configured or DEFAULT_TRACKING_URI
    if tracking.startswith("sqlite:///"):
        db = Path(tracking.removeprefix("sqlite:///"))
        if not db.is_file():
            where = "" if configured else f" (set {TRACKING_URI_ENV} or --tracking-uri to your store)"
            raise ModelError(f"{uri}: no mlflow tracking store at {tracking}{where}")
    return tracking


def _download(uri: str, tracking_uri: str | None = None) -> Path:
    import mlflow

    tracking = _tracking_uri_for(uri, tracking_uri)
    try:
        if tracking is not None:
            mlflow.set_tracking_uri(tracking)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as err:  # mlflow raises several types for unknown models and unreachable servers
        raise ModelError(f"{uri}: cannot fetch the model ({first_line(err)})") from err


def _find_card(root: Path) -> Path:
    """An mlflow pyfunc keeps our model folder among its artifacts; find it by its card."""
    cards = sorted(root.rglob(CARD_FILE))
    if not cards:
        raise ModelError(f"{root}: holds no detector model ({CARD_FILE} not found)")
    return cards[0].parent
