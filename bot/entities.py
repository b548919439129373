"""Rasa 3.6's CRFEntityExtractor, stored lean and loaded without being trained again.

Rasa's component stores its whole training set and trains its CRFs again from it on every
load: every token with the MiniLM featurizer's 384 dense features as decimal strings, 136 of
the base model's ~138 MB unpacked, written and gzipped at every training, json-parsed (0.8 s)
and trained again (0.7 s) at every load of every model, each shop version included
(bench/models.py). Our CRF's features (config.yml: Rasa's defaults) never read dense features.

This one, with the same settings and the same training:
- takes dense features only when its `features` name `text_dense_features` (then as Rasa);
- stores the trained CRFs themselves (crfsuite's model files, pickled by sklearn-crfsuite as
  Rasa's other scikit-learn components are) and its tag order, not the training set;
- loads those; a model stored by Rasa's own component loads as Rasa loads it.
Same entities and confidences as Rasa's (tests/bot/test_entities.py), except in a card number
the gateway masked ("**** **** **** 1111", core/cards.py): nothing there is an entity (its
last four digits are no order number), as the order number pattern (data/nlu/patterns.yml)
leaves them out too.
"""

from __future__ import annotations

import pickle
import re
from typing import Any

import numpy as np
import rasa.shared.utils.io
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors import crf_entity_extractor as rasa_crf
from rasa.shared.nlu.constants import ENTITIES, ENTITY_ATTRIBUTE_END, ENTITY_ATTRIBUTE_START, TEXT
from rasa.shared.nlu.training_data.message import Message

TAGGERS = "crf_taggers.pkl"
ORDER = "crf_order.json"
# What core/cards.py `mask` writes for a card number (tests/integration test_card_numbers.py).
MASKED_CARD = re.compile(r"\*{4} \*{4} \*{4} \d{4}")


def outside_masked_cards(message: Message) -> None:
    """Drop the message's entities that lie in a masked card number."""
    spans = [found.span() for found in MASKED_CARD.finditer(message.get(TEXT) or "")]
    if not spans:
        return
    kept = [entity for entity in message.get(ENTITIES, [])
            if not any(entity.get(ENTITY_ATTRIBUTE_START, -1) < end
                       and entity.get(ENTITY_ATTRIBUTE_END, -1) > start
                       for start, end in spans)]
    message.set(ENTITIES, kept, add_to_output=True)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class CRFEntityExtractor(rasa_crf.CRFEntityExtractor):
    def _reads_dense_features(self) -> bool:
        dense = rasa_crf.CRFEntityExtractorOptions.TEXT_DENSE_FEATURES.value
        return any(dense in position for position in self.component_config["features"])

    def _get_dense_features(self, message: Message) -> np.ndarray | None:
        if not self._reads_dense_features():
            return None  # every token's dense features are then [] (Rasa's own fallback)
        features: np.ndarray | None = super()._get_dense_features(message)
        return features

    def process(self, messages: list[Message]) -> list[Message]:
        processed: list[Message] = super().process(messages)
        for message in processed:
            outside_masked_cards(message)
        return processed

    def persist(self, dataset: list[list[rasa_crf.CRFToken]]) -> None:
        """The trained CRFs and their order (not `dataset`, which Rasa's load trains from)."""
        with self._model_storage.write_to(self._resource) as model_dir:
            with (model_dir / TAGGERS).open("wb") as file:
                pickle.dump(self.entity_taggers, file, protocol=pickle.HIGHEST_PROTOCOL)
            rasa.shared.utils.io.dump_obj_as_json_to_file(model_dir / ORDER, self.crf_order)

    @classmethod
    def load(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> CRFEntityExtractor:
        try:
            with model_storage.read_from(resource) as model_dir:
                lean = (model_dir / TAGGERS).is_file()
                if lean:
                    with (model_dir / TAGGERS).open("rb") as file:
                        taggers = pickle.load(file)  # noqa: S301 - our own model file
                    order = rasa.shared.utils.io.read_json_file(model_dir / ORDER)
        except ValueError:  # nothing stored: no entity examples were trained on (as Rasa)
            return cls(config, model_storage, resource)
        if not lean:  # stored by Rasa's own component: its dataset, trained again
            loaded: CRFEntityExtractor = super().load(config, model_storage, resource,
                                                       execution_context, **kwargs)
            return loaded
        extractor = cls(config, model_storage, resource, taggers)
        extractor.crf_order = order
        return extractor
