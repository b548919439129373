"""What an invitation mail says: who invited, to which shop, as what, and the link."""

from __future__ import annotations

from admin_api.mail import invitation_text

LINK = "https://admin.shop.example/invite?token=t"


def test_a_person_who_invited_is_named() -> None:
    text = invitation_text("Demo Outfitters", "agent", LINK, "user:ann@shop.example")
    assert "ann@shop.example invited you to help run the support bot of Demo Outfitters" in text
    assert "as an agent" in text and LINK in text


def test_an_invitation_by_the_shops_api_key_comes_from_the_shops_team() -> None:
    text = invitation_text("Demo Outfitters", "designer", LINK, "key:3af001e26537")
    assert text.startswith("Hello,\n\nThe Demo Outfitters team invited you")
    assert "Switchboard team" not in text and "3af001e26537" not in text
    assert "as a designer" in text
