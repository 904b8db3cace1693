"""A package's public names, each imported from its module on first use.

`import detector.lm.token_stats` runs `detector/lm/__init__.py` first: were that file to import all of
its modules, reading one small module would import torch, OpenVINO or scikit-learn. Each subpackage
instead declares which module holds each public name, and the module is imported when the name is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, homes: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]],
                                                                   list[str]]:
    """(`__getattr__`, `__dir__`, `__all__`) for `package`, whose public name N lives in module
    `package.homes[N]`."""

    def __getattr__(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{homes[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(homes)

    return __getattr__, __dir__, sorted(homes)
