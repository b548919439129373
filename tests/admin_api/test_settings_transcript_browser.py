"""The owner page's Settings tab and a transcript a person helped in, in headless Chromium
against a real admin process (tests/admin_api/test_pages_browser.py's `admin_process`).

Settings: what is wrong goes under its field in the page's words ("Return window days must be
0 or more", refused by the API; "needs a value" and opening hours that end before they start,
told by the page itself), never pydantic's "return_window_days: Input should be ..." in the
status line; the API's and the page's errors together, each gone once its field is fixed.
Opening hours are a time zone and a form per weekday (closed, or spans from-to) saved in the
API's shape, shown again after a reload, and cleared (not set: always staffed).

Transcript: each message says who wrote it (Visitor, Bot, "Ann Agent (agent)"), and the
handoff, the agents' internal note and the visitor's rating stand where they happened.

Marked `integration`: Chromium and a server process of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Dialog, Page, expect

from core.conversations import HandoffRow, MessageRow
from core.db import create_engine, session_factory
from core.handoffs import NoteRow
from core.settings import async_database_url
from devtools.demo_shop import DEMO_TENANT_ID
from tests.admin_api.test_pages_browser import OWNER, WAIT_MS, Served, demo_served, log_in
from tests.browser import chromium, watched_page

pytestmark = pytest.mark.integration

VISITOR = f"{DEMO_TENANT_ID}:web:helped-visitor"


async def helped(database_url: str) -> None:
    """A web conversation a person took over: the visitor asks for one, the bot says one will
    reply, Ann answers, notes something for her colleagues, hands it back, and the visitor
    rates the help 5 (then the bot thanks them)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)

    def at(minutes: float) -> datetime:
        return start + timedelta(minutes=minutes)

    engine = create_engine(async_database_url(database_url))
    try:
        async with session_factory(engine)() as session:
            def message(direction: str, text: str, minutes: float, **columns: object
                        ) -> MessageRow:
                return MessageRow(tenant_id=DEMO_TENANT_ID, sender_id=VISITOR, channel="web",
                                  direction=direction, text=text, created_at=at(minutes),
                                  **columns)

            session.add_all([
                message("in", "I want to talk to a person", 0, intent="human_handoff",
                        confidence=0.97, outcome="handoff", handled_at=at(0)),
                message("out", "A person will reply here soon.", 0.1,
                        payload={"messages": [{"text": "A person will reply here soon."}]}),
                message("out", "Hi, this is Ann from the shop.", 3,
                        payload={"agent": {"id": "user-ann", "name": "Ann Agent"},
                                 "messages": [{"text": "Hi, this is Ann from the shop."}]}),
                message("in", "5", 12, intent="rate", confidence=0.9, outcome="flow",
                        handled_at=at(12)),
                message("out", "Thank you for your rating!", 12.1,
                        payload={"messages": [{"text": "Thank you for your rating!"}]}),
                HandoffRow(tenant_id=DEMO_TENANT_ID, sender_id=VISITOR, channel="web",
                           reason="visitor_asked", last_message="I want to talk to a person",
                           status="resolved", created_at=at(0.05), assignee_id="user-ann",
                           assignee_name="Ann Agent", assigned_at=at(2),
                           first_reply_at=at(3), resolved_at=at(10), rating=5,
                           rated_at=at(12)),
                NoteRow(tenant_id=DEMO_TENANT_ID, sender_id=VISITOR, author_id="user-ann",
                        author_name="Ann Agent", text="Regular customer: offered free shipping.",
                        created_at=at(5))])
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with demo_served(tmp_path_factory.mktemp("settings-page"), helped) as served:
        yield served


@pytest.fixture
def page(served: Served) -> Iterator[Page]:
    expect.set_options(timeout=WAIT_MS)
    with chromium() as browser, watched_page(browser, WAIT_MS, base_url=served.base,
                                             timezone_id="UTC") as page:
        yield page


def stored_settings(page: Page, base: str) -> dict[str, object]:
    answer = page.request.get(f"{base}/api/v1/settings")
    assert answer.ok, answer.text()
    settings: dict[str, object] = answer.json()
    return settings


def test_settings_errors_stand_under_their_fields_in_the_pages_words(
        served: Served, page: Page) -> None:
    log_in(page, served.base, OWNER, served.owner_password)
    status = page.locator("#settings-status")
    days = page.get_by_label("Return window days")
    expect(days).to_be_editable()

    days.fill("-5")  # refused by the API: its 422 in the page's words, under the field
    page.get_by_role("button", name="Save settings").click()
    expect(status).to_have_text("Not saved: see the marked fields.")
    expect(page.locator("#setting-return_window_days-error")).to_have_text(
        "Return window days must be 0 or more")
    expect(days).to_have_attribute("aria-invalid", "true")
    expect(days).to_be_focused()
    assert "Input should be" not in page.content()

    days.fill("30")
    page.get_by_label("LLM temperature").fill("2")
    page.get_by_label("Support email").fill("not an address")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".field-error:visible")).to_have_text([
        "Support email is not an email address", "LLM temperature must be 1 or less"])
    expect(days).not_to_have_attribute("aria-invalid", "true")  # fixed: no longer marked
    expect(page.get_by_label("Support email")).to_be_focused()

    page.get_by_label("LLM temperature").fill("")  # told by the page, no request
    page.get_by_label("Support email").fill("help@demo.example")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".field-error:visible")).to_have_text(["LLM temperature needs a value"])
    page.get_by_label("LLM temperature").fill("0.2")
    page.get_by_role("button", name="Save settings").click()
    expect(status).to_have_text("Saved: Support email.")
    expect(page.locator(".field-error:visible")).to_have_count(0)
    assert stored_settings(page, served.base)["support_email"] == "help@demo.example"


def test_the_apis_and_the_pages_errors_show_together_and_go_when_fixed(
        served: Served, page: Page) -> None:
    """A save the page refuses itself (a value missing) still shows what the API refused of
    values not changed since; a marked field loses its mark as it is fixed, before saving.
    (The page's own check used to hide the API's errors until the next save.)"""
    log_in(page, served.base, OWNER, served.owner_password)
    status = page.locator("#settings-status")
    email, days = page.get_by_label("Support email"), page.get_by_label("Return window days")
    temperature = page.get_by_label("LLM temperature")
    expect(days).to_be_editable()
    email.fill("not an address")
    days.fill("-5")
    page.get_by_role("button", name="Save settings").click()
    errors = page.locator(".field-error:visible")
    expect(errors).to_have_text(["Support email is not an email address",
                                 "Return window days must be 0 or more"])

    temperature.fill("")  # the page's own check, no request: shown with the API's two
    page.get_by_role("button", name="Save settings").click()
    expect(errors).to_have_text(["Support email is not an email address",
                                 "Return window days must be 0 or more",
                                 "LLM temperature needs a value"])
    expect(status).to_have_text("Not saved: see the marked fields.")

    temperature.fill("0.3")  # fixed: its mark goes as it is typed
    expect(errors).to_have_text(["Support email is not an email address",
                                 "Return window days must be 0 or more"])
    expect(temperature).not_to_have_attribute("aria-invalid", "true")
    days.fill("")  # still wrong, now by the page's words
    expect(errors).to_have_text(["Support email is not an email address",
                                 "Return window days needs a value"])
    days.fill("14")
    email.fill("help@demo.example")
    expect(errors).to_have_count(0)
    expect(status).to_have_text("")
    page.get_by_role("button", name="Save settings").click()
    expect(status).to_contain_text("Saved:")
    stored = stored_settings(page, served.base)
    assert (stored["support_email"], stored["return_window_days"], stored["llm_temperature"]) == (
        "help@demo.example", 14, 0.3)


def test_opening_hours_are_a_form_per_weekday_saved_in_the_apis_shape(
        served: Served, page: Page) -> None:
    log_in(page, served.base, OWNER, served.owner_password)
    status = page.locator("#settings-status")
    hours = page.get_by_label("Opening hours: people answer at set times")
    expect(hours).not_to_be_checked()  # the demo shop sets none: always staffed
    expect(page.get_by_label("Time zone")).to_be_hidden()
    hours.check()
    zone = page.get_by_label("Time zone")
    expect(zone).to_have_value("UTC")  # the browser's own zone (this context's)
    zone.select_option("Europe/Berlin")

    monday = page.get_by_role("group", name="Monday")
    expect(monday.get_by_label("Closed")).to_be_checked()
    monday.get_by_label("Closed").uncheck()  # a day opened starts as 09:00-17:00
    expect(monday.get_by_label("Monday from")).to_have_value("09:00")
    monday.get_by_label("Monday to").fill("10:00")
    tuesday = page.get_by_role("group", name="Tuesday")
    tuesday.get_by_label("Closed").uncheck()
    tuesday.get_by_label("Tuesday from").fill("17:00")
    tuesday.get_by_label("Tuesday to").fill("09:00")
    page.get_by_role("button", name="Save settings").click()
    expect(tuesday.locator(".field-error")).to_have_text(
        "Tuesday: 17:00–09:00 ends before it starts")
    expect(tuesday.get_by_label("Tuesday from")).to_be_focused()
    expect(status).to_have_text("Not saved: see the marked fields.")
    assert stored_settings(page, served.base)["opening_hours"] is None

    tuesday.get_by_label("Closed").check()
    friday = page.get_by_role("group", name="Friday")
    friday.get_by_label("Closed").uncheck()
    friday.get_by_label("Friday to").fill("12:00")
    friday.get_by_role("button", name="Add hours").click()
    friday.get_by_label("Friday from").nth(1).fill("13:00")
    friday.get_by_label("Friday to").nth(1).fill("17:30")
    saturday = page.get_by_role("group", name="Saturday")
    saturday.get_by_label("Closed").uncheck()
    saturday.get_by_label("Saturday from").fill("18:00")
    saturday.get_by_label("Saturday to").fill("00:00")  # until midnight
    page.get_by_role("button", name="Save settings").click()
    expect(status).to_have_text("Saved: Opening hours.")
    expect(page.locator(".field-error:visible")).to_have_count(0)
    assert stored_settings(page, served.base)["opening_hours"] == {
        "timezone": "Europe/Berlin",
        "days": {"mon": [["09:00", "10:00"]], "fri": [["09:00", "12:00"], ["13:00", "17:30"]],
                 "sat": [["18:00", "24:00"]]}}

    page.reload()  # shown again as saved
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")
    expect(page.get_by_label("Monday to")).to_have_value("10:00")
    expect(page.get_by_label("Friday from")).to_have_count(2)
    expect(page.get_by_label("Saturday to")).to_have_value("00:00")
    expect(page.get_by_role("group", name="Tuesday").get_by_label("Closed")).to_be_checked()
    page.get_by_role("button", name="Save settings").click()
    expect(status).to_have_text("Nothing changed.")

    page.get_by_label("Opening hours: people answer at set times").uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(status).to_have_text("Saved: Opening hours.")
    assert stored_settings(page, served.base)["opening_hours"] is None


def test_the_transcript_says_who_wrote_each_message_with_notes_and_the_rating(
        served: Served, page: Page) -> None:
    log_in(page, served.base, OWNER, served.owner_password)
    page.get_by_role("tab", name="Conversations").click()
    page.locator("#conversations-table tbody tr", has_text="Thank you for your rating").click()
    turns = page.locator("#transcript-turns > li")
    expect(turns).to_have_count(9)
    said = [" ".join(text.split()) for text in turns.all_inner_texts()]
    expected = [("Visitor", "I want to talk to a person"), ("Bot", "A person will reply here"),
                ("Handed to a person (visitor asked)", ""),
                ("Ann Agent (agent)", "Hi, this is Ann from the shop."),
                ("Internal note · Ann Agent", "Regular customer: offered free shipping."),
                ("Resolved by Ann Agent: back to the bot", ""),
                ("Visitor", "5"), ("Bot", "Thank you for your rating!"),
                ("The visitor rated the help 5 of 5", "")]
    for (who, text), shown in zip(expected, said, strict=True):
        assert shown.startswith(who) and text in shown, (who, text, said)
    agent = page.locator("#transcript-turns .turn.from-agent")
    expect(agent.locator(".who")).to_have_text("Ann Agent (agent)")
    expect(page.locator("#transcript-turns .turn.from-bot .who").first).to_have_text("Bot")
    expect(page.locator("#transcript-turns .event.rating")).to_contain_text("rated the help 5")



def test_logging_out_with_unsaved_settings_or_texts_asks_first(
        served: Served, page: Page) -> None:
    log_in(page, served.base, OWNER, served.owner_password)
    days = page.get_by_label("Return window days")
    expect(days).to_be_editable()
    asked: list[str] = []

    def answer(accept: bool) -> None:
        def answered(dialog: Dialog) -> None:
            asked.append(dialog.message)
            if accept:
                dialog.accept()
            else:
                dialog.dismiss()
        page.once("dialog", answered)

    # Nothing edited: logging out asks nothing.
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert asked == []

    log_in(page, served.base, OWNER, served.owner_password)
    expect(days).to_be_editable()
    days.fill(str(int(days.input_value() or "0") + 7))
    page.get_by_role("tab", name="Texts").click()
    text = page.locator("#texts-list article:visible textarea").first
    expect(text).to_be_editable()
    name = text.locator("xpath=ancestor::article").get_attribute("data-name")
    text.fill("Hello! A text being reworded.")
    answer(accept=False)
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#app")).to_be_visible()  # stayed, with both edits
    expect(text).to_have_value("Hello! A text being reworded.")
    assert len(asked) == 1 and "settings (Return window days)" in asked[0], asked
    assert f"the text {name}" in asked[0], asked
    # Leaving the page asks too (the browser's own question).
    left = page.evaluate("""() => { const event = new Event('beforeunload', {cancelable: true});
        window.dispatchEvent(event); return event.defaultPrevented; }""")
    assert left is True

    answer(accept=True)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert len(asked) == 2


def test_an_order_backend_without_credentials_is_marked_under_it_until_changed(
        served: Served, page: Page) -> None:
    """PATCH /settings' 409 (Shopify has no credentials yet) stands under Order backend in
    its own words, and goes once another backend is chosen. (It stood in the status line
    only, and stayed there after the owner had chosen demo again.)"""
    log_in(page, served.base, OWNER, served.owner_password)
    status = page.locator("#settings-status")
    backend = page.get_by_label("Order backend")
    expect(backend).to_be_editable()
    backend.select_option("shopify")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#setting-order_backend-error")).to_have_text(
        "Shopify cannot answer order questions without its Shop address and Admin API access "
        "token: enter them on the Channels tab, under Orders (Shop platform: Shopify); saving "
        "there makes Shopify the shop's order backend")
    expect(backend).to_have_attribute("aria-invalid", "true")
    expect(status).to_have_text("Not saved: see the marked fields.")

    backend.select_option("demo")  # fixed: the mark and the status line go
    expect(page.locator(".field-error:visible")).to_have_count(0)
    expect(backend).not_to_have_attribute("aria-invalid", "true")
    expect(status).to_have_text("")
    assert stored_settings(page, served.base)["order_backend"] == "demo"
