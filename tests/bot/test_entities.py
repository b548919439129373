"""bot/entities.py's CRF against Rasa's own, inside Rasa's interpreter (.venv-bot): trained on
the entity examples of data/nlu (dense MiniLM features present, as in config.yml's pipeline),
both find the same entities with the same confidences in messages they never saw; ours stores
no training set (a model a fraction of the size) and loads without training again, and a
model stored by Rasa's component still loads with ours."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.bot.in_rasa import run_in_rasa

SCRIPT = r"""
import json, sys, tempfile
from pathlib import Path
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.extractors.crf_entity_extractor import CRFEntityExtractor as RasaCRF
from rasa.nlu.featurizers.sparse_featurizer.regex_featurizer import RegexFeaturizer
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.importers.importer import TrainingDataImporter
from rasa.shared.nlu.training_data.message import Message
from bot.entities import CRFEntityExtractor as OurCRF
from bot.featurizer import MiniLMFeaturizer

asked = json.loads(sys.stdin.read())
nlu = TrainingDataImporter.load_from_dict(training_data_paths=["data/nlu"]).get_nlu_data()
training = nlu.filter_training_examples(lambda m: bool(m.get("entities")))
context = ExecutionContext(graph_schema=None, node_name="x")
storage = LocalModelStorage(Path(tempfile.mkdtemp()))
tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
regexes = RegexFeaturizer.create({**RegexFeaturizer.get_default_config(),
                                  "case_sensitive": False}, storage, Resource("re"), context)
minilm = MiniLMFeaturizer.create(MiniLMFeaturizer.get_default_config(), None, Resource("m"),
                                 context)
tokenizer.process_training_data(training)
regexes.train(nlu)
regexes.process_training_data(training)
minilm.process_training_data(training)

def asked_messages():
    messages = [Message(data={"text": text}) for text in asked]
    tokenizer.process(messages)
    regexes.process(messages)
    minilm.process(messages)
    return messages

def found(extractor):
    return [[(e["entity"], e["value"], round(e["confidence_entity"], 4))
             for e in message.get("entities", [])]
            for message in extractor.process(asked_messages())]

def stored(name):
    with storage.read_from(Resource(name)) as folder:
        return {p.name: p.stat().st_size for p in folder.iterdir()}

out = {"examples": len(training.training_examples)}
config = RasaCRF.get_default_config()
theirs = RasaCRF.create(config, storage, Resource("theirs"), context)
theirs.train(training)
ours = OurCRF.create(config, storage, Resource("ours"), context)
ours.train(training)
out["theirs"], out["ours"] = found(theirs), found(ours)
out["stored_theirs"], out["stored_ours"] = stored("theirs"), stored("ours")

def refuse(*args, **kwargs):
    raise AssertionError("trained again at load")
trains = OurCRF.train_model
OurCRF.train_model = classmethod(refuse)
out["ours_loaded"] = found(OurCRF.load(config, storage, Resource("ours"), context))
OurCRF.train_model = trains
out["theirs_loaded_by_ours"] = found(OurCRF.load(config, storage, Resource("theirs"), context))
print(json.dumps(out))
"""

ASKED = ["where is order #1002? my email is sam@example.com",
         "I want to return the denim jacket and the scarf",
         "can you check order 1001 for me", "hi there"]


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    parsed: dict[str, Any] = run_in_rasa(SCRIPT, json.dumps(ASKED))
    return parsed


def test_the_same_entities_with_the_same_confidences_as_rasas(result: dict[str, Any]) -> None:
    assert result["examples"] > 50
    assert result["ours"] == result["theirs"]
    values = {value for message in result["ours"] for _, value, _ in message}
    assert {"#1002", "sam@example.com", "1001", "denim jacket", "scarf"} <= values, values
    assert result["ours"][-1] == []  # "hi there" names nothing


def test_no_training_set_is_stored_and_a_load_does_not_train_again(
        result: dict[str, Any]) -> None:
    assert "crf_dataset.json" in result["stored_theirs"]
    assert "crf_dataset.json" not in result["stored_ours"]
    assert sum(result["stored_ours"].values()) * 10 < sum(result["stored_theirs"].values())
    assert result["ours_loaded"] == result["theirs"]


def test_a_model_stored_by_rasas_component_loads(result: dict[str, Any]) -> None:
    assert result["theirs_loaded_by_ours"] == result["theirs"]
