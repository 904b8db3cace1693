"""A Hugging Face tokenizer folder read with the `tokenizers` library alone (no transformers at start-up)."""

from __future__ import annotations

import json
from pathlib import Path


class FileTokenizer:
    """A Hugging Face tokenizer folder (tokenizer.json) read with the `tokenizers` library alone: the same
    ids and character offsets as transformers' tokenizer of that folder (tests/integration/test_startup.py), without
    importing transformers (seconds at start-up)."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.backend.no_truncation()
        self.backend.no_padding()
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
        self.bos_token_id = self._token_id(config.get("bos_token"))
        self.eos_token_id = self._token_id(config.get("eos_token"))

    def _token_id(self, token) -> int | None:
        if isinstance(token, dict):  # {"content": "<s>", ...} in older configs
            token = token.get("content")
        return self.backend.token_to_id(token) if isinstance(token, str) else None

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.backend.encode(text, add_special_tokens=False)
        return enc.ids, enc.offsets
