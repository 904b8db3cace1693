"""Load a model from wherever it lives: a folder, or an mlflow model URI (models:/, runs:/, ...)."""

from __future__ import annotations

from pathlib import Path

from detector.model import CARD_FILE, DetectorModel, ModelError


def load_model(location: str) -> DetectorModel:
    path = Path(location)
    if path.exists():
        found = path if (path / CARD_FILE).exists() or path.is_file() else _find_card(path)
        return DetectorModel.load(found)
    if ":/" in location:
        return DetectorModel.load(_find_card(_download(location)))
    raise ModelError(f"{location}: no such model folder (nor an mlflow URI like models:/NAME/1)")


def _download(uri: str) -> Path:
    import mlflow

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as err:  # mlflow raises several types for unknown models and unreachable servers
        raise ModelError(f"{uri}: cannot fetch the model ({str(err).splitlines()[0][:200]})") from err


def _find_card(root: Path) -> Path:
    """An mlflow pyfunc keeps our model folder among its artifacts; find it by its card."""
    cards = sorted(root.rglob(CARD_FILE))
    if not cards:
        raise ModelError(f"{root}: holds no detector model ({CARD_FILE} not found)")
    return cards[0].parent
