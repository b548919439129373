"""Two measured speed-ups of Rasa 3.6.21's turn handling, installed in every Rasa process.

1. Stop re-checking Rasa's own JSON schema on every action-server reply.
   `RemoteAction._validate_action_result` calls `jsonschema.validate`, which first validates
   the *schema itself* (`check_schema`) and builds a new validator, on every custom action
   call. Measured here (bench/turns.py, py-spy): 27-31 ms per action call, about half of
   Rasa's CPU per turn. We validate every response against the same schema with a validator
   built once: the same checks and the same error, without the repeated schema self-check.

2. Parse messages beside the event loop. `MessageProcessor.parse_message` runs the NLU graph
   on Rasa's event loop; a third of its CPU under 20 concurrent conversations, half of that
   in the MiniLM encoder (bot/featurizer.py), whose ONNX Runtime call releases the GIL. Run in
   one worker thread, a parse leaves the loop free for other conversations' tracker reads,
   policies and HTTP calls, and the encoder uses the second core. One thread: the graph's
   Python parts hold the GIL anyway, and the components are safe to call from a thread
   (stateless at prediction; InferenceSession.run is thread-safe). `parse_message` below is
   Rasa 3.6.21's own, with that one call moved to the thread.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jsonschema import ValidationError, validators
from jsonschema.exceptions import best_match
from rasa.core.actions.action import RemoteAction
from rasa.core.processor import MessageProcessor, structlogger
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.trackers import DialogueStateTracker

_nlu_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlu")


@functools.lru_cache(maxsize=1)
def _response_validator() -> Any:
    schema = RemoteAction.action_response_format_spec()
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)  # once, as jsonschema.validate would every time
    return validator_class(schema)


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    error = best_match(_response_validator().iter_errors(result))
    if error is None:
        return True
    assert isinstance(error, ValidationError)
    error.message += (
        ". Failed to validate Action server response from API, make sure your response "
        f"from the Action endpoint is valid. For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


async def parse_message(self: MessageProcessor, message: Any, tracker: Any = None,
                        only_output_properties: bool = True) -> dict[str, Any]:
    if self.http_interpreter:
        parse_data = await self.http_interpreter.parse(message)
    else:
        if tracker is None:
            tracker = DialogueStateTracker.from_events(message.sender_id, [])
        parse_data = await asyncio.get_running_loop().run_in_executor(
            _nlu_thread, self._parse_message_with_graph, message, tracker,
            only_output_properties)
    self._update_full_retrieval_intent(parse_data)
    structlogger.debug(
        "processor.message.parse",
        parse_data_text=copy.deepcopy(parse_data["text"]),
        parse_data_intent=parse_data["intent"],
        parse_data_entities=copy.deepcopy(parse_data["entities"]),
    )
    self._check_for_unseen_features(parse_data)
    return parse_data


def install() -> None:
    RemoteAction._validate_action_result = _validate_action_result
    MessageProcessor.parse_message = parse_message
