"""Sender ids: built from what the gateway verified, read back by the action server."""

from __future__ import annotations

import pytest

from core.sender_ids import NotTenantScoped, SenderId, sender_id


def test_round_trip_keeps_colons_in_the_visitors_part() -> None:
    built = sender_id("t-1", "rest", "crm:contact:42")
    assert built == "t-1:rest:crm:contact:42"
    assert SenderId.parse(built) == SenderId("t-1", "rest", "crm:contact:42")
    assert str(SenderId.parse(built)) == built


@pytest.mark.parametrize("raw", ["", "visitor-1", "t-1:rest", "t-1::x", ":rest:x", "t-1:rest:"])
def test_ids_the_gateway_did_not_build_are_refused(raw: str) -> None:
    with pytest.raises(NotTenantScoped):
        SenderId.parse(raw)
