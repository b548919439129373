"""Questions and documents are embedded by ONNX Runtime (core/minilm.py) into the vectors
sentence-transformers on PyTorch gives, so questions meet documents as before, and a process
that asks or ingests never loads PyTorch (on CPUs without AMX, where "auto" is fp32:
knowledge/embeddings.py)."""

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
WINDOWS = [
    "Shipping > Countries: We ship to every country of the EU, to Switzerland, Norway and the UK.",
    "Returns: You have 30 days from delivery to return an item, unworn and with its tags on.",
    "Sku: JKT-DENIM. Category: Jackets. Price (EUR): 89.00. Sizes: XS, S, M, L, XL.",
    "x",
    "Gift cards never expire. " * 60,  # over 256 word pieces: cut where PyTorch cuts it
]


def test_onnx_question_vectors_match_pytorch(embedder: Embedder) -> None:
    embedder.encode_query("warm up")
    assert "query" in embedder._onnx_encoders  # not PyTorch's fallback
    for question in QUESTIONS:
        ours = embedder.encode_query(question)
        reference = embedder.encode_with_pytorch([question], "fp32", 1)[0]
        assert ours.shape == reference.shape and ours.dtype == np.float32
        assert float(ours @ reference) > 0.9999, question


def test_onnx_document_vectors_match_pytorch_in_order(embedder: Embedder) -> None:
    onnx = Embedder("fp32")  # whatever the CPU: the session's embedder is bf16 where it can be
    ours = onnx.encode(WINDOWS)
    reference = embedder.encode_with_pytorch(WINDOWS)  # its PyTorch model, loaded once
    assert ours.shape == reference.shape == (len(WINDOWS), 384) and ours.dtype == np.float32
    cosines = np.sum(ours * reference, axis=1)
    assert cosines.min() > 0.9999, cosines  # each row is its own text's (batched by length)
    assert onnx.encode([]).shape == (0, 384)
    idle = Embedder("fp32")  # an ingest that changed nothing encodes no text: nothing is built
    assert idle.encode([]).shape == (0, 384) and idle._onnx_encoders == {}


def test_questions_and_documents_are_embedded_without_pytorch() -> None:
    """The action server embeds questions, the admin service's jobs, bootstrap and the CLI
    documents: PyTorch (~450 MB, ~10 s of CPU to import and load) stays out of their processes."""
    script = ("import sys\n"
              "from knowledge.embeddings import Embedder\n"
              "embedder = Embedder('fp32')\n"
              "vector = embedder.encode_query('can I pay with paypal?')\n"
              "documents = embedder.encode(['We take PayPal.', 'Returns are free.'])\n"
              "closer = float(documents[0] @ vector) > float(documents[1] @ vector)\n"
              "print(round(float((vector ** 2).sum()), 4), documents.shape[0], closer,\n"
              "      embedder.token_count('We take PayPal.'), 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["1.0", "2", "True", "7", "False"], done.stderr
