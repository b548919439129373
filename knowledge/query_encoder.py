"""Visitor questions embedded with ONNX Runtime: the same all-MiniLM-L6-v2, ~5x faster per query.

A question is one short text, where PyTorch's per-call overhead dominates (7-13 ms for a
6-layer model); ONNX Runtime runs the same encoder in ~2 ms. The session is core/minilm.py's,
built in memory from the packaged weights in about a second (no PyTorch, no file: it replaced
an ONNX export with PyTorch that took ~6 s of CPU in every fresh var dir and imported PyTorch
at every start, only to fingerprint the file). Mean pooling and L2 normalisation match
sentence-transformers' modules for this model, so the vectors are interchangeable with the
document vectors (cosine ≥ 0.9999, tests/knowledge/test_query_encoder.py).

If ONNX Runtime fails, `Embedder.encode_query` keeps using PyTorch.
"""

from __future__ import annotations

import threading

import numpy as np

from core.minilm import sentence_vectors, session, tokenizer

MAX_TOKENS = 256  # the model's max_seq_length, as sentence-transformers cuts documents


class QueryEncoder:
    def __init__(self) -> None:
        # One thread: for one short text a second thread only waits (see embeddings.py).
        self._session = session(threads=1)
        self._tokenizer = tokenizer(MAX_TOKENS)
        self._lock = threading.Lock()

    def encode(self, text: str) -> np.ndarray:
        encoding = self._tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.float32)
        with self._lock:
            hidden = np.asarray(self._session.run(
                None, {"input_ids": ids, "attention_mask": mask})[0])
        vector: np.ndarray = sentence_vectors(hidden, mask)[0]
        return vector
