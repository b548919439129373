"""The ONNX query encoder gives the vectors PyTorch gives, so questions meet documents as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knowledge.embeddings import Embedder
from knowledge.query_encoder import QueryEncoder

QUESTIONS = [
    "do u ship to canada??",
    "what sizes does the denim jacket come in",
    "JKT-DENIM-M",
    "Wie lange dauert die Rückerstattung?",
    "how long do refunds take " * 40,  # longer than the model reads: truncated alike
]


def test_onnx_question_vectors_match_pytorch(embedder: Embedder, tmp_path: Path) -> None:
    onnx = QueryEncoder(tmp_path)

    for question in QUESTIONS:
        ours = onnx.encode(question)
        reference = embedder._encode([question], "fp32", 1)[0]
        assert ours.shape == reference.shape and ours.dtype == np.float32
        assert float(ours @ reference) > 0.9999, question


def test_export_happens_once_per_machine(tmp_path: Path) -> None:
    QueryEncoder(tmp_path)
    exported = list(tmp_path.glob("*.onnx"))
    stamp = exported[0].stat().st_mtime_ns

    QueryEncoder(tmp_path)

    assert len(exported) == 1 and list(tmp_path.glob("*.onnx")) == exported
    assert exported[0].stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob("*.tmp"))


def test_embedder_uses_onnx_for_questions_when_given_a_folder(tmp_path: Path) -> None:
    with_onnx = Embedder(onnx_dir=tmp_path)
    vector = with_onnx.encode_query("can I pay with paypal?")

    assert list(tmp_path.glob("*.onnx")) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5
