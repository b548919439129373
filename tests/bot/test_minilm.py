"""The NLU's dense features: bot/minilm.py computes all-MiniLM-L6-v2 as sentence-transformers
does, and the Rasa featurizer gives every token and every message a vector.

The encoder (ONNX Runtime, core/minilm.py) runs here (our 3.11 environment, which also has PyTorch's
sentence-transformers to compare with); the featurizer runs inside Rasa's interpreter.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bot.minilm import MiniLM
from knowledge.embeddings import get_embedder
from tests.bot.in_rasa import run_in_rasa

TEXTS = [
    "where is my order #1002?",
    "I need to speak with someone from customer service",
    "Wat sizes does the denim jacket come in??",
    "ok",
    "Hi! I ordered a scarf and a jacket last week, paid with PayPal, and nothing has arrived "
    "yet; my email is sam@example.com. Could you please check what is going on with it?",
]


@pytest.fixture(scope="module")
def minilm() -> MiniLM:
    return MiniLM()


def test_sentence_vectors_match_sentence_transformers(minilm: MiniLM) -> None:
    ours = np.stack([e.sentence for e in minilm.encode(TEXTS)])
    theirs = get_embedder().encode_with_pytorch(TEXTS)  # sentence-transformers
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() > 0.9999, cosine


def test_int8_encoder_stays_close_to_the_float_one(minilm: MiniLM) -> None:
    """config.yml's encoder (8-bit weights, bot/minilm.py): near the float vectors, and what
    is near what stays so."""
    exact = np.stack([e.sentence for e in minilm.encode(TEXTS)])
    int8 = np.stack([e.sentence for e in MiniLM(int8=True).encode(TEXTS)])
    assert (exact * int8).sum(axis=1).min() > 0.97  # a bare "ok" moves most
    assert np.abs(exact @ exact.T - int8 @ int8.T).max() < 0.05


def test_results_keep_input_order_across_batches(minilm: MiniLM) -> None:
    texts = [f"question number {i} " + "about shipping " * (i % 7) for i in range(150)]
    together = minilm.encode(texts)
    alone = [minilm.encode([t])[0] for t in (texts[3], texts[149])]
    assert np.allclose(together[3].sentence, alone[0].sentence, atol=1e-5)
    assert np.allclose(together[149].sentence, alone[1].sentence, atol=1e-5)


def test_word_pieces_carry_their_place_in_the_text(minilm: MiniLM) -> None:
    text = "Denim jacket, size XL"
    encoded = minilm.encode([text])[0]
    assert len(encoded.spans) == len(encoded.pieces)
    assert [text[s:e].lower() for s, e in encoded.spans] == ["denim", "jacket", ",", "size", "xl"]


FEATURIZE = r"""
import json, sys
import numpy as np
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message
from bot.featurizer import MiniLMFeaturizer

context = ExecutionContext(graph_schema=None, node_name="minilm")
tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
featurizer = MiniLMFeaturizer.create({**MiniLMFeaturizer.get_default_config(), "scale": 2.0},
                                     None, Resource("minilm"), context)
messages = [Message(data={"text": t}) for t in json.loads(sys.stdin.read())]
tokenizer.process(messages)
featurizer.process(messages)
out = []
for m in messages:
    sequence, sentence = m.get_dense_features("text")
    out.append({"tokens": len(m.get("text_tokens")), "sequence": list(sequence.features.shape),
                "sentence": sentence.features[0].tolist()})
print(json.dumps(out))
"""


def test_rasa_featurizer_gives_each_token_and_each_message_a_vector() -> None:
    texts = ["I would like to talk to a person", "can I speak with a human?",
             "where is my order #1002?"]
    result = run_in_rasa(FEATURIZE, json.dumps(texts), timeout=300)
    for row in result:
        assert row["sequence"] == [row["tokens"], 384]
    vectors = np.array([row["sentence"] for row in result])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 2.0, atol=1e-4)  # scaled as configured
    person, human, order = vectors / 2.0
    # Two ways of asking for a person are closer to each other than to an order question.
    assert float(person @ human) > float(person @ order) + 0.2


AHEAD = r"""
import asyncio, json, threading
import numpy as np
import yaml
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.resource import Resource
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message
from bot import featurizer as f

tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
def featurizer_of(model):
    return f.MiniLMFeaturizer.create({**f.MiniLMFeaturizer.get_default_config(), "model": model},
                                     None, Resource("minilm"), ExecutionContext(None, "minilm"))
featurizer, older = featurizer_of(f.INT8), featurizer_of(f.FLOAT)
named = [c.get("model") for c in yaml.safe_load(open("config.yml"))["pipeline"]
         if c["name"] == "bot.featurizer.MiniLMFeaturizer"]
threads = []
encode = f.MiniLM.encode
def encode_on_record(self, texts):
    threads.append(threading.current_thread().name)
    return encode(self, texts)
f.MiniLM.encode = encode_on_record

def sentence(text, featurizer=featurizer):
    message = Message(data={"text": text})
    tokenizer.process([message])
    featurizer.process([message])
    return message.get_dense_features("text")[1].features[0]

async def main():
    inline = sentence("where is my order?")
    async with f.encoded_ahead("where is my order?"):
        ahead = sentence("where is my order?")
        other = sentence("hello there")
        sentence("where is my order?", older)  # a model trained on the float encoder
    async with f.encoded_ahead("/greet"):
        pass
    after = sentence("where is my order?")
    print(json.dumps({"same": bool(np.allclose(inline, ahead, atol=1e-5)),
                      "other": bool(np.allclose(other, ahead)),
                      "after": bool(np.allclose(inline, after, atol=1e-5)),
                      "threads": threads, "ahead": f.AHEAD, "named": named}))

asyncio.run(main())
"""


def test_a_turns_message_is_encoded_off_the_event_loop_with_the_same_features() -> None:
    """bot/channel.py encodes each turn's message on the encoder's own thread before Rasa's
    processing, with the encoder config.yml names; the featurizer takes that encoding for that
    text only, a model trained on the other encoder encodes it itself, and a payload
    ("/greet") that skips the NLU is not encoded at all."""
    result = run_in_rasa(AHEAD, timeout=300)
    assert result["same"] and result["after"] and not result["other"]
    # inline, ahead (on the encoder's thread), "hello there" inline, the float model's own,
    # inline again after.
    assert result["threads"] == ["MainThread", "minilm_0", "MainThread", "MainThread",
                                 "MainThread"]
    assert result["named"] == [result["ahead"]]
