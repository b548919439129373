"""What an action says: a response of the domain with the values its template may use.

Actions never compose a visitor's text themselves: they name a response and pass values, and
Rasa renders it through our NLG endpoint (admin_api/nlg.py) in the shop's own words when it
overrode that response. tenants/texts.py ARGUMENTS lists the values each response receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rasa_sdk.executor import CollectingDispatcher


@dataclass(frozen=True)
class Said:
    """A response the action says, with the values its template may use (tenants/texts.py
    ARGUMENTS lists them), so a shop's own wording applies (Rasa renders it through our NLG)."""

    response: str
    arguments: dict[str, str] = field(default_factory=dict)

    def utter(self, dispatcher: CollectingDispatcher) -> None:
        arguments: dict[str, Any] = dict(self.arguments)
        dispatcher.utter_message(response=self.response, **arguments)
