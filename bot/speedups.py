"""Make Rasa 3.6 stop re-checking its own JSON schema on every action-server reply.

`RemoteAction._validate_action_result` calls `jsonschema.validate`, which first validates the
*schema itself* (`check_schema`) and builds a new validator, on every custom action call.
Measured here (bench/turns.py, py-spy): 27-31 ms per action call, about half of Rasa's CPU
per turn. We validate every response against the same schema with a validator built once:
the same checks and the same error, without the repeated schema self-check.
"""

from __future__ import annotations

import functools
from typing import Any

from jsonschema import ValidationError, validators
from jsonschema.exceptions import best_match
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL


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


def install() -> None:
    RemoteAction._validate_action_result = _validate_action_result
