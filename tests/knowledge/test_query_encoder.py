"""Questions are embedded by ONNX Runtime (core/minilm.py) into the vectors PyTorch gives, so
questions meet documents as before, and a process that only asks questions never loads PyTorch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from knowledge.embeddings import Embedder

QUESTIONS = [
    "do u ship to canada??",
    "what sizes does the denim jacket come in",
    "JKT-DENIM-M",
    "Wie lange dauert die Rückerstattung?",
    "how long do refunds take " * 40,  # longer than the model reads: truncated alike
]


def test_onnx_question_vectors_match_pytorch(embedder: Embedder) -> None:
    assert embedder._onnx_encoder() is not None  # not PyTorch's fallback
    for question in QUESTIONS:
        ours = embedder.encode_query(question)
        reference = embedder._encode([question], "fp32", 1)[0]
        assert ours.shape == reference.shape and ours.dtype == np.float32
        assert float(ours @ reference) > 0.9999, question


def test_a_question_is_answered_without_pytorch() -> None:
    """The action server only embeds questions: PyTorch (~300 MB, seconds to import) stays
    out of its process."""
    script = ("import sys\n"
              "from knowledge.embeddings import Embedder\n"
              "vector = Embedder().encode_query('can I pay with paypal?')\n"
              "print(round(float((vector ** 2).sum()), 4), 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["1.0", "False"], done.stderr
