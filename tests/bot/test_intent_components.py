"""The intent classifier and the question guard, inside Rasa's interpreter (.venv-bot).

- fit_softmax finds the same model as scikit-learn's LogisticRegression with the same C;
- tf_idf scales each featurizer's columns to unit length apart (all of them together when it is
  told of no blocks, as for a model stored before blocks were);
- LinearIntentClassifier, trained through Rasa's own featurizers (words and word pairs,
  character n-grams, as config.yml), sends paraphrases it never saw to the right intent and
  keeps doing so after a save and a load, and after a load of a model stored without blocks;
- one message is scored as it would be in a batch (a turn's shortcut);
- a greeting or a thanks with a question in it becomes the best intent that is not small talk.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.bot.in_rasa import run_in_rasa

SCRIPT = r"""
import json, sys, tempfile
from pathlib import Path
import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from bot.classifier import FILE, LinearIntentClassifier, fit_softmax, tf_idf
from bot.featurizer import MiniLMFeaturizer
from bot.questions import QuestionsAreNotSmallTalk

out = {}

# 1. The solver against scikit-learn on a small problem with sparse and dense columns.
rng = np.random.default_rng(3)
sparse = sp.random(300, 40, density=0.1, random_state=4, format="csr", dtype=np.float32)
dense = rng.normal(size=(300, 5)).astype(np.float32)
labels = rng.integers(0, 4, size=300)
weights = fit_softmax(sparse, dense, labels, 4, c=2.0, max_iter=500)
both = sp.hstack([sparse, sp.csr_matrix(dense)]).tocsr()
ours = both @ weights[:-1] + weights[-1]
ours = np.exp(ours - ours.max(axis=1, keepdims=True)); ours /= ours.sum(axis=1, keepdims=True)
theirs = LogisticRegression(C=2.0, max_iter=2000, tol=1e-8).fit(both, labels).predict_proba(both)
out["max_probability_gap"] = float(np.abs(ours - theirs).max())

# 2. TF-IDF lengths: one block, or two (columns 0-5 and 6-11); a row may leave a block empty.
counts = sp.csr_matrix(np.array([[1, 2, 0, 0, 0, 0, 3, 1, 1, 1, 1, 1],
                                 [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                                 [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=np.float32))
idf = np.linspace(1.0, 2.0, 12).astype(np.float32)
def lengths(m):
    return np.sqrt(np.asarray(m.multiply(m).sum(axis=1))).ravel().round(5).tolist()
one, two = tf_idf(counts, idf), tf_idf(counts, idf, np.array([0, 6]))
out["one_block"] = lengths(one)
out["two_blocks"] = [lengths(two[:, :6]), lengths(two[:, 6:])]
out["same_direction_in_block"] = float(np.abs(
    two[0, 6:].toarray() / np.linalg.norm(two[0, 6:].toarray())
    - one[0, 6:].toarray() / np.linalg.norm(one[0, 6:].toarray())).max())

# 3. Trained through Rasa's own pieces, saved, loaded, asked new phrasings.
examples = {
    "check_order_status": ["where is my order", "has my parcel shipped yet",
                           "my package still hasn't arrived", "track my delivery",
                           "when will my order get here", "is my order on its way"],
    "human_handoff": ["let me talk to a human", "connect me with an agent",
                      "I want to speak to a real person", "get me customer service",
                      "can a person help me", "transfer me to support staff"],
    "ask_question": ["do you ship to canada", "what payment methods do you take",
                     "how long do refunds take", "what is your returns policy",
                     "do you have gift cards", "how much is delivery"],
    "greet": ["hi", "hello", "hey there", "good morning", "hiya", "hello again"],
}
training = TrainingData([Message(data={"text": t, "intent": i})
                         for i, texts in examples.items() for t in texts])
context = ExecutionContext(graph_schema=None, node_name="x")
storage = LocalModelStorage(Path(tempfile.mkdtemp()))
tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
words = CountVectorsFeaturizer.create(
    {**CountVectorsFeaturizer.get_default_config(), "max_ngram": 2}, storage, Resource("cv"),
    context)
chars = CountVectorsFeaturizer.create(
    {**CountVectorsFeaturizer.get_default_config(), "analyzer": "char_wb", "min_ngram": 2,
     "max_ngram": 4}, storage, Resource("cc"), context)
minilm = MiniLMFeaturizer.create(MiniLMFeaturizer.get_default_config(), None, Resource("m"),
                                 context)
tokenizer.process_training_data(training)
for featurizer in (words, chars):
    featurizer.train(training)
    featurizer.process_training_data(training)
minilm.process_training_data(training)
config = LinearIntentClassifier.get_default_config()
trained = LinearIntentClassifier.create(config, storage, Resource("lin"), context)
trained.train(training)
loaded = LinearIntentClassifier.load(config, storage, Resource("lin"), context)
out["blocks"] = loaded._blocks.tolist()
out["word_columns"] = len(words.vectorizers["text"].vocabulary_)
with storage.read_from(Resource("lin")) as folder:
    stored = dict(np.load(folder / FILE, allow_pickle=False))
with storage.write_to(Resource("old")) as folder:
    np.savez(folder / FILE, **{k: v for k, v in stored.items() if k != "blocks"})
old = LinearIntentClassifier.load(config, storage, Resource("old"), context)
out["old_blocks"] = old._blocks.tolist()
guard = QuestionsAreNotSmallTalk.create(QuestionsAreNotSmallTalk.get_default_config(), storage,
                                        Resource("q"), context)
asked = json.loads(sys.stdin.read())
messages = [Message(data={"text": t}) for t in asked]
tokenizer.process(messages)
words.process(messages)
chars.process(messages)
minilm.process(messages)
out["before_save"] = [m.get("intent")["name"] for m in trained.process(
    [Message(data=dict(m.data), features=list(m.features)) for m in messages])]
out["old_model"] = [m.get("intent")["name"] for m in old.process(
    [Message(data=dict(m.data), features=list(m.features)) for m in messages])]
every = [*training.intent_examples, *messages]
out["one_by_one_gap"] = float(np.abs(
    np.vstack([loaded.message_scores(m) for m in every]) - loaded.scores(every)).max())
out["old_one_by_one_gap"] = float(np.abs(
    np.vstack([old.message_scores(m) for m in every]) - old.scores(every)).max())
loaded.process(messages)
out["after_load"] = [m.get("intent")["name"] for m in messages]
out["confidences"] = [m.get("intent")["confidence"] for m in messages]
out["ranking_sums"] = [sum(r["confidence"] for r in m.get("intent_ranking")) for m in messages]

# 4. The guard, on classifications as the classifier could make them.
def classified(text, *ranking):
    names = [{"name": n, "confidence": c} for n, c in ranking]
    return Message(data={"text": text, "intent": names[0], "intent_ranking": names})

guarded = guard.process([
    classified("hi there", ("greet", 0.9), ("ask_question", 0.1)),
    classified("hi there, how long does delivery take", ("greet", 0.6), ("ask_question", 0.3)),
    classified("thanks! and where is my order?", ("thank", 0.7), ("greet", 0.2),
               ("check_order_status", 0.1)),
    classified("thanks?", ("thank", 0.9), ("ask_question", 0.1)),
    classified("can you stop this now?", ("stop", 0.9), ("ask_question", 0.1)),
    classified("bye, have a nice day", ("goodbye", 0.8), ("ask_question", 0.2)),
    classified("thanks, can't wait to get it", ("thank", 0.8), ("ask_question", 0.2)),
    classified("thanks, will look later", ("goodbye", 0.9), ("ask_question", 0.1)),
])
out["guarded"] = [m.get("intent")["name"] for m in guarded]
print(json.dumps(out))
"""

ASKED = ["anybody from your team around? I need a hand", "parcel not here yet",
         "can I pay by card", "hello"]


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    parsed: dict[str, Any] = run_in_rasa(SCRIPT, json.dumps(ASKED))
    return parsed


def test_solver_finds_scikit_learns_model(result: dict[str, Any]) -> None:
    assert result["max_probability_gap"] < 2e-3


def test_tf_idf_scales_each_block_to_unit_length(result: dict[str, Any]) -> None:
    assert result["one_block"] == [1.0, 1.0, 0.0]
    assert result["two_blocks"] == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    assert result["same_direction_in_block"] < 1e-6  # only the length within a block changes


def test_each_featurizer_is_a_block_and_a_model_without_blocks_still_loads(
        result: dict[str, Any]) -> None:
    assert result["blocks"] == [0, result["word_columns"]]
    assert result["old_blocks"] == [0]
    assert len(result["old_model"]) == len(ASKED)  # one block's scaling: it still classifies


def test_new_phrasings_reach_their_intent_before_and_after_a_save(
        result: dict[str, Any]) -> None:
    expected = ["human_handoff", "check_order_status", "ask_question", "greet"]
    assert result["before_save"] == expected
    assert result["after_load"] == expected
    assert all(abs(total - 1.0) < 1e-4 for total in result["ranking_sums"])


def test_one_message_is_scored_as_in_a_batch(result: dict[str, Any]) -> None:
    """A turn's message takes a shortcut past the sparse matrices; its scores are the batch's."""
    assert result["one_by_one_gap"] < 1e-4
    assert result["old_one_by_one_gap"] < 1e-4


def test_a_greeting_with_a_question_is_a_question(result: dict[str, Any]) -> None:
    assert result["guarded"] == [
        "greet",  # a greeting alone stays one
        "ask_question",
        "check_order_status",  # the best intent that is not small talk, not always a question
        "thank",  # too short to be a question
        "stop",  # asking to stop is a stop
        "goodbye",  # a wish, not a question
        "thank",  # "can't" opens no question
        "goodbye",  # "will look later" puts it off: no question (it fell back before)
    ]
