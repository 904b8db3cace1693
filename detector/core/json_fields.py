"""Typed access to the fields of a parsed JSON object, naming the field that is missing or wrong: how
files a user may hand the detector (calibration profiles) are checked before anything is built from them."""

from __future__ import annotations

import math
from typing import Any

from detector.core.errors import InvalidField


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Fields:
    """Typed access to a JSON object's fields, naming the field that is missing or wrong."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise InvalidField(f"{where} is not a JSON object")
        self.data, self.where = data, where

    def get(self, key: str, kind: type, nullable: bool = False) -> Any:
        if key not in self.data:
            raise InvalidField(f"{self.where}.{key} is missing")
        value = self.data[key]
        if value is None and nullable:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidField(f"{self.where}.{key} is not a {kind.__name__}")
        return value

    def number(self, key: str, nullable: bool = False) -> float:
        if key not in self.data:
            raise InvalidField(f"{self.where}.{key} is missing")
        value = self.data[key]
        if value is None and nullable:
            return float("nan")
        if not is_number(value):
            raise InvalidField(f"{self.where}.{key} is not a finite number")
        return float(value)

    def probability(self, key: str) -> float:
        value = self.number(key)
        if not 0 <= value <= 1:
            raise InvalidField(f"{self.where}.{key} = {value} is not a probability")
        return value

    def rate(self, key: str) -> float:
        value = self.number(key)
        if not 0 < value < 1:
            raise InvalidField(f"{self.where}.{key} = {value} is not a rate between 0 and 1")
        return value

    def count(self, key: str) -> int:
        value = self.get(key, int)
        if value < 0:
            raise InvalidField(f"{self.where}.{key} is negative")
        return value
