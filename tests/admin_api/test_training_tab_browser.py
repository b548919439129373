"""The owner page's Training tab in headless Chromium against a real admin process (`python -m
admin_api serve` on a migrated SQLite database, as tests/admin_api/test_pages_browser.py
starts it) whose workshop is tests/admin_api/test_models.py's stand-in (TrainingWorkshop: the
training contract in a second, no Rasa), so the page's calls, the job workers and our own
checks of the drafts are real.

One browser. A designer starts an NLU draft from its template, saves it with a line indented
wrongly, validates, clicks the error (the draft opens with the caret on that line), fixes it
(keeping the open draft when asked about unsaved changes), validates clean, trains, watches
the version finish, reads its evaluation, activates it, trains and activates a second one,
rolls back to the first, deletes the second, cancels a third mid-training (whose progress is
polled only while the tab is shown), and accepts a gap (visitors' gift-wrap questions) into a
draft that then shows the examples; logging out with that draft edited asks first; once the
active version predates the base (a deploy changed it) the tab says so. An agent sees no
Training tab, not even from a link.

Marked `integration`: it needs Chromium (`make test` installs Debian's) and a server process.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, expect
from sqlalchemy import select, update

from admin_api import people
from admin_api.training.models import ModelVersionRow, ShopModelRow
from core.conversations import MessageRow
from core.db import create_engine, session_factory
from core.settings import async_database_url
from devtools.demo_shop import DEMO_TENANT_ID, seed_demo
from tests.admin_api.test_pages_browser import admin_process, log_in
from tests.browser import chromium, require_chromium, watched_page
from tests.databases import migrated_url
from tests.fakes.workshop_server import TrainingWorkshop

pytestmark = pytest.mark.integration

WAIT_MS = 10_000
DESIGNER = "designer@demo.example"
AGENT = "agent@demo.example"
# Line 6 is indented as a key of the intent's item, not as an example: a YAML error there.
BROKEN = """version: "3.1"
nlu:
  - intent: check_order_status
    examples: |
      - where is my bike
    - has my bike shipped yet
"""
GIFT_WRAP = ["do you offer gift wrapping?", "Do you offer gift wrapping?",
             "can you gift wrap my order", "is gift wrap available for my purchase"]


@dataclass(frozen=True)
class Served:
    base: str
    password: str
    workshop: TrainingWorkshop
    database_url: str


async def prepare(database_url: str, password: str) -> None:
    """The demo shop, a designer and an agent with `password`, and visitors' gift-wrap
    questions the bot fell back on yesterday (a gap)."""
    engine = create_engine(async_database_url(database_url))
    try:
        sessions = session_factory(engine)
        await seed_demo(sessions)
        for email, role in ((DESIGNER, "designer"), (AGENT, "agent")):
            await people.set_password(sessions, email, password, create=True)
            await people.ensure_member(sessions, DEMO_TENANT_ID, email, role)
        at = datetime.now(UTC) - timedelta(days=1)
        async with sessions() as session:
            session.add_all([
                MessageRow(tenant_id=DEMO_TENANT_ID, sender_id=f"{DEMO_TENANT_ID}:web:gift-{n}",
                           channel="web", direction="in", message_id=f"gift-{n}", text=said,
                           intent="nlu_fallback", confidence=0.3, outcome="fallback",
                           created_at=at + timedelta(minutes=n),
                           handled_at=at + timedelta(minutes=n))
                for n, said in enumerate(GIFT_WRAP)])
            await session.commit()
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    require_chromium()
    root = tmp_path_factory.mktemp("training-tab")
    database_url = migrated_url("sqlite", root)
    password = secrets.token_urlsafe(12)
    asyncio.run(prepare(database_url, password))
    with TrainingWorkshop(queued_for=0.2, running_for=0.4, evaluating_for=0.2) as workshop, \
            admin_process(root, database_url, WORKSHOP_URL=workshop.base_url,
                          # Sanic's own SANIC_ settings: the training workers ask the
                          # workshop every 0.1 s instead of every second.
                          SANIC_TRAINING_POLL="0.1") as base:
        yield Served(base, password, workshop, database_url)


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Browser]:
    expect.set_options(timeout=WAIT_MS)
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, served: Served) -> Iterator[Page]:
    with watched_page(browser, WAIT_MS, base_url=served.base) as page:
        yield page


def answer_next_dialog(page: Page, accept: bool = True) -> list[str]:
    """Accepts (or dismisses) the next confirm(); returns the list its message lands in."""
    said: list[str] = []

    def answer(dialog: Dialog) -> None:
        said.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.once("dialog", answer)
    return said


def caret_line(page: Page) -> int:
    return int(page.evaluate("""() => {
        const area = document.getElementById('draft-text');
        return area.value.slice(0, area.selectionStart).split('\\n').length; }"""))


def write_a_broken_draft_and_fix_it(page: Page) -> None:
    page.get_by_role("tab", name="Training").click()
    expect(page.locator("#drafts-list")).to_contain_text("No drafts yet")
    page.get_by_text("New draft").click()
    page.get_by_label("Kind", exact=True).select_option("nlu")
    page.get_by_label("Name", exact=True).fill("bikes")
    page.get_by_role("button", name="Start the draft").click()
    expect(page.locator("#draft-title")).to_have_text("nlu/bikes.yml (new, not saved yet)")
    editor = page.get_by_label("Rasa YAML")
    expect(editor).to_be_focused()
    expect(editor).to_have_value(re.compile(r"^version: \"3.1\"\n#"))  # the template
    editor.fill(BROKEN)
    expect(page.locator("#draft-gutter span")).to_have_count(7)  # six lines and the last break
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#draft-status")).to_contain_text("Saved, with 1 problem")
    expect(page.get_by_role("button", name="nlu/bikes.yml", exact=True)).to_be_visible()
    # Training refused, in words (the API's detail names its own paths, for scripts).
    page.get_by_role("button", name="Train a new version").click()
    expect(page.locator("#validate-status")).to_have_text(
        "Not trained: 1 error in the drafts to fix first; each below opens its draft at its "
        "line.")

    page.get_by_role("button", name="Validate all drafts").click()
    expect(page.locator("#validate-status")).to_contain_text("1 error to fix")
    error = page.locator("#validate-errors").get_by_role("button")
    expect(error).to_have_text(re.compile(r"^nlu/bikes\.yml, line 6: YAML syntax error"))
    editor.evaluate("area => area.setSelectionRange(0, 0)")
    error.click()
    expect(editor).to_be_focused()
    expect(page.locator("#draft-caret")).to_have_text("Line 6, column 1")
    assert caret_line(page) == 6
    # The line is selected: typing replaces it.
    page.keyboard.type("      - has my bike shipped yet")

    # Another draft may not silently take the unsaved fix away: kept when the designer says so.
    page.get_by_label("Name", exact=True).fill("other")
    asked = answer_next_dialog(page, accept=False)
    page.get_by_role("button", name="Start the draft").click()
    expect(page.locator("#draft-title")).to_have_text("nlu/bikes.yml")
    assert asked and "not saved" in asked[0]
    expect(editor).to_have_value(BROKEN.replace("\n    - has", "\n      - has"))
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#draft-status")).to_have_text("Saved.")
    # The check's "1 error" was about the draft before this save: it says so.
    expect(page.locator("#validate-status")).to_have_text(
        re.compile("^The drafts changed since this check: validate again"))
    page.get_by_role("button", name="Validate all drafts").click()
    expect(page.locator("#validate-status")).to_have_text(
        re.compile("^No errors: the drafts can train."))
    expect(page.locator("#validate-errors")).to_be_hidden()


def version_row(page: Page, state: str | None = None) -> Locator:
    rows = page.locator("#models-table tbody tr:not([data-id=base])")
    return rows.filter(has_text=state) if state else rows


def train(page: Page) -> str:
    """Trains the stored drafts; the new version's id once the page says it is ready."""
    page.get_by_role("button", name="Train a new version").click()
    expect(page.locator("#validate-status")).to_contain_text("Training version ")
    status = page.locator("#models-status")
    expect(status).to_contain_text("is ready")
    expect(page.locator("#validate-status")).to_be_empty()  # over: no "Training …" left
    found = re.search(r"version ([0-9a-f]{8})", status.inner_text())
    assert found, status.inner_text()
    return found.group(1)


def train_compare_activate_roll_back_delete_cancel(page: Page, served: Served) -> None:
    first = train(page)
    # Ready: its details open with the evaluation against the base model.
    details = page.locator("#model-details")
    expect(details.get_by_role("heading", level=3)).to_have_text(f"Details of version {first}")
    expect(details).to_contain_text("Compared with the base model")
    intent = details.get_by_role("row", name=re.compile("^ask_size"))
    expect(intent).to_contain_text("1.00")  # precision
    expect(intent).to_contain_text("0.67")  # F1
    # 2 held-out examples: the page says they are too few to judge, and why macro F1 moves.
    expect(intent).to_contain_text("2 held-out examples: too few to judge these scores")
    expect(details.locator(".small-sample")).to_contain_text(
        "Only 2 examples were held out")
    expect(details.locator(".small-sample")).to_contain_text("One intent has fewer than 5")
    # An intent too small to hold one out is named, not silently missing from the table.
    expect(details.locator("#unscored-intents")).to_contain_text(
        "Not scored: ask_gift_wrap (2 examples). An intent needs 5 examples or more")
    expect(details.get_by_role("row", name=re.compile("^returns"))).to_contain_text(
        "failed → passed")
    expect(details).to_contain_text("31 of 31 pass (the base model: 30 of 31)")
    # On a phone the details keep to the screen's width: the fingerprint (one long word)
    # made the whole page scroll sideways, the held-out table with it.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(details.locator("dd").filter(has_text=re.compile(r"^[0-9a-f]{32}$"))).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 720})
    row = version_row(page).filter(has_text=first)
    expect(row).to_contain_text("ready")
    expect(row).to_contain_text(f"user:{DESIGNER}")
    expect(row).to_contain_text("4.2 kB")

    asked = answer_next_dialog(page)
    row.get_by_role("button", name=f"Activate: version {first}").click()
    expect(page.locator("#models-status")).to_have_text(f"version {first} is active: the shop's "
                                                        "bot uses it now.")
    assert asked and "Activate version" in asked[0]
    expect(version_row(page).filter(has_text=first)).to_contain_text("active")

    # The same drafts again: no second training of the same model; the page says which
    # version they made and how to train anew.
    page.get_by_role("button", name="Train a new version").click()
    expect(page.locator("#validate-status")).to_have_text(
        f"Not trained: the drafts are the ones version {first} was trained from, and the "
        "shop's bot uses it already. Change a draft to train a new version.")
    expect(details.get_by_role("heading", level=3)).to_have_text(f"Details of version {first}")
    expect(version_row(page)).to_have_count(1)
    editor = page.get_by_label("Rasa YAML")
    expect(page.locator("#draft-title")).to_have_text("nlu/bikes.yml")
    editor.fill(editor.input_value() + "      - where is my order\n")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#draft-status")).to_have_text("Saved.")
    expect(page.locator("#validate-status")).to_have_text(
        re.compile("^The drafts changed since this check"))

    second = train(page)
    answer_next_dialog(page)
    page.get_by_role("button", name=f"Activate: version {second}").click()
    expect(page.locator("#models-status")).to_contain_text(f"version {second} is active")
    asked = answer_next_dialog(page)
    page.get_by_role("button", name=f"Roll back to this: version {first}").click()
    expect(page.locator("#models-status")).to_contain_text(f"version {first} is active")
    assert asked and asked[0].startswith("Roll back to version")
    active = page.locator("#models-table tbody tr[aria-current=true]")
    expect(active).to_have_count(1)
    expect(active).to_contain_text(first)
    # The version in use cannot be deleted from the page; the other one can.
    expect(active.get_by_role("button", name=re.compile("^Delete"))).to_have_count(0)
    asked = answer_next_dialog(page)
    page.get_by_role("button", name=f"Delete version {second}").click()
    expect(page.locator("#models-status")).to_have_text(f"Deleted version {second}.")
    expect(version_row(page)).to_have_count(1)
    assert asked and "cannot be undone" in asked[0]

    # A training started by mistake: cancelled while it runs.
    served.workshop.running_for = 5.0
    page.get_by_role("button", name="Train a new version").click()
    job = page.locator("#train-job")
    expect(job.get_by_role("status")).to_contain_text(re.compile("queued|training"))
    # Its progress is asked for only while the tab is shown, and again once back.
    polled: list[str] = []
    page.on("request", lambda request: polled.append(request.url)
            if "/api/v1/models/" in request.url else None)
    page.get_by_role("tab", name="Texts").click()
    page.wait_for_timeout(200)  # a poll sent just before the click
    polled.clear()
    page.wait_for_timeout(1000)  # more than the page's 0.7 s between polls
    assert polled == []
    with page.expect_request(re.compile(r"/api/v1/models/[0-9a-f]{32}$")):
        page.get_by_role("tab", name="Training").click()
    asked = answer_next_dialog(page)
    job.get_by_role("button", name="Cancel the training").click()
    expect(page.locator("#models-status")).to_contain_text("was cancelled")
    expect(job).to_be_hidden()
    expect(version_row(page, "cancelled")).to_have_count(1)
    assert asked and "Cancel the training" in asked[0]


def accept_a_gap(page: Page) -> None:
    page.get_by_role("button", name="Validate all drafts").click()
    expect(page.locator("#validate-status")).to_have_text(
        re.compile("^No errors: the drafts can train."))
    gap = page.locator("#gaps-list").get_by_role("button", name="Do you offer gift wrapping?",
                                                 exact=True)
    expect(page.locator("#gaps-list li")).to_contain_text("asked 4 times; suggested intent ")
    gap.click()
    form = page.locator("#gap-form")
    examples = form.get_by_label("Examples (one a line)")
    expect(examples).to_be_focused()
    expect(examples).to_have_value(re.compile("can you gift wrap my order"))
    form.get_by_label("Intent", exact=True).fill("ask_gift_wrap")
    examples.fill("do you offer gift wrapping?\ncan you gift wrap my order\nwrap it as a gift")
    form.get_by_role("button", name="Add to the draft").click()
    expect(form.get_by_role("status")).to_contain_text(
        "Added 3 examples of ask_gift_wrap to nlu/gaps.yml. The new intent is listed in "
        "domain/gaps.yml.")
    expect(page.locator("#draft-title")).to_have_text("nlu/gaps.yml")
    editor = page.get_by_label("Rasa YAML")
    expect(editor).to_have_value(re.compile(r"intent: ask_gift_wrap"))
    expect(editor).to_have_value(re.compile(r"- wrap it as a gift"))
    expect(page.get_by_role("button", name="domain/gaps.yml")).to_be_visible()
    # The drafts changed as a save changes them: the check above says it is stale.
    expect(page.locator("#validate-status")).to_have_text(
        re.compile("^The drafts changed since this check: validate again"))


async def trained_on_an_older_base(database_url: str) -> None:
    """The shop's active version as a deploy leaves it when it changes the base (data/,
    bot/domain, config.yml): its snapshot's hash was made over the base before."""
    engine = create_engine(async_database_url(database_url))
    try:
        async with session_factory(engine)() as session:
            active = await session.scalar(select(ShopModelRow.version_id).where(
                ShopModelRow.tenant_id == DEMO_TENANT_ID))
            await session.execute(update(ModelVersionRow).where(
                ModelVersionRow.id == active).values(snapshot_sha256="0" * 64))
            await session.commit()
    finally:
        await engine.dispose()


def logging_out_with_an_unsaved_draft_asks_first(page: Page) -> None:
    editor = page.get_by_label("Rasa YAML")
    stored = editor.input_value()
    editor.fill(stored + "      - gift wrap, please\n")
    asked = answer_next_dialog(page, accept=False)
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#app")).to_be_visible()  # stayed, the edit kept
    expect(editor).to_have_value(re.compile("gift wrap, please"))
    assert asked and "the training draft nlu/gaps.yml" in asked[0], asked
    editor.fill(stored)  # as stored: nothing to ask about any more


def a_deploy_changed_the_base(page: Page, served: Served) -> None:
    notice = page.locator("#base-newer")
    expect(notice).to_be_hidden()  # the active version is on the current base
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs a loop in this thread
        pool.submit(asyncio.run, trained_on_an_older_base(served.database_url)).result()
    page.reload()
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("was trained before the base training data every shop "
                                   "shares last changed")
    expect(notice).to_contain_text("Training again includes it, even with unchanged drafts.")
    answer_next_dialog(page)
    page.get_by_role("button", name="Back to the base model: the base model").click()
    expect(page.locator("#models-status")).to_have_text("The shop's bot uses the base model now.")
    expect(notice).to_be_hidden()


def test_a_designer_edits_validates_trains_compares_activates_and_accepts_a_gap(
        served: Served, page: Page) -> None:
    log_in(page, served.base, DESIGNER, served.password)
    write_a_broken_draft_and_fix_it(page)
    train_compare_activate_roll_back_delete_cancel(page, served)
    accept_a_gap(page)
    logging_out_with_an_unsaved_draft_asks_first(page)
    a_deploy_changed_the_base(page, served)


def test_an_agent_has_no_training_tab(served: Served, page: Page) -> None:
    log_in(page, served.base, AGENT, served.password)
    expect(page.get_by_role("tab", name="Conversations")).to_have_attribute("aria-selected",
                                                                            "true")
    expect(page.get_by_role("tab", name="Training")).to_be_hidden()
    page.goto(f"{served.base}/app/#training")
    expect(page.get_by_role("tab", name="Conversations")).to_have_attribute("aria-selected",
                                                                            "true")
    expect(page.locator("#panel-training")).to_be_hidden()
