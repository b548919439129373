"""The demo shop's conversations, played over HTTP through the real gateway, Rasa and actions.

The dialogue flows (`one_shape`) run on the embedded stack; what is stored or counted (failed
email tries, the returns ledger, where conversations live, shops' isolation, lockouts,
outages) on both (tests/integration/conftest.py)."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime

import httpx
import pytest
from redis import Redis
from sqlalchemy import text

from actions.attempts import CONTESTED_LIMIT, LIMITS
from tests.databases import sync_engine
from tests.integration.conftest import Visitor
from tests.integration.stack import APP_PY, ROOT, Stack
from tests.integration.test_channels import rows

pytestmark = pytest.mark.integration

TRACKING = "1Z999AA10123456784"
REFERENCE = re.compile(r"RMA-\d+-[A-Z0-9]{4}")


def asks_order_number(text: str) -> bool:
    return "order number" in text.lower()


def asks_email(text: str) -> bool:
    return "email" in text.lower()


@pytest.mark.one_shape
def test_order_status_asks_for_number_then_email(visitor: Visitor) -> None:
    assert asks_order_number(visitor.say("where is my order?"))
    assert asks_email(visitor.say("1001"))
    answer = visitor.say("alex@example.com")
    assert "shipped" in answer and "UPS" in answer and TRACKING in answer


@pytest.mark.one_shape
def test_order_status_in_one_message(visitor: Visitor) -> None:
    answer = visitor.say("Where's order #1001? my email is alex@example.com")
    assert "UPS" in answer and TRACKING in answer


@pytest.mark.one_shape
def test_one_order_after_another_never_leaves_the_visitor_without_an_answer(
        visitor: Visitor) -> None:
    for _ in range(3):  # what the channel benchmark's visitors do, over and over
        assert visitor.say("where is my order?").strip()
        assert visitor.say("#1001").strip()
        assert visitor.say("alex@example.com").strip()
    assert asks_order_number(visitor.say("where is my order?"))
    assert asks_order_number(visitor.say("where is my order?"))  # asked again: asks again


@pytest.mark.one_shape
def test_order_number_without_hash_and_email_in_capitals(visitor: Visitor) -> None:
    visitor.say("has my parcel shipped yet")
    visitor.say("order 1002")
    answer = visitor.say("SAM@Example.com")
    assert "delivered" in answer and "Denim jacket" in answer


def test_wrong_email_reveals_nothing_and_offers_a_person_after_three_tries(
        visitor: Visitor) -> None:
    visitor.say("where is my order")
    replies = []
    for attempt in range(3):
        visitor.say("#1002")
        replies.append(visitor.say(f"someone{attempt}@example.org"))
    for reply in replies:
        for secret in ("delivered", "DHL", "JD014600006281230704", "Denim", "Scarf", "sam@"):
            assert secret.lower() not in reply.lower(), reply
    assert "couldn't find" in replies[0].lower()
    assert "/human_handoff" in [b["payload"] for b in visitor.buttons()]
    # A typed "yes" accepts the offer.
    accepted = visitor.say("yes please")
    assert "person from our team" in accepted and "can't answer" not in accepted


@pytest.mark.one_shape
def test_handoff_is_acknowledged_and_the_bot_steps_aside(visitor: Visitor) -> None:
    answer = visitor.say("I want to talk to a human")
    assert "person from our team" in answer
    # A person owns the conversation now: the bot says nothing more (Rasa is paused).
    assert visitor.say("can I speak to a real person") == ""
    assert visitor.say("where is my order?") == ""


@pytest.mark.one_shape
def test_misunderstood_twice_in_a_row_a_person_takes_over(stack: Stack, visitor: Visitor) -> None:
    assert "don't know" in visitor.say("asdfghjkl")  # the knowledge route offers a person
    handed_over = visitor.say("blah blah")
    assert "not getting this right" in handed_over and "person from our team" in handed_over
    [(status, reason, summary)] = rows(
        stack, "SELECT status, reason, summary FROM handoff_requests WHERE sender_id LIKE :s",
        s=f"%:rest:{visitor.sender}")
    assert (status, reason) == ("queued", "misunderstood")
    assert "blah blah" in str(summary)  # the question nobody could answer, for the agent
    assert visitor.say("hello?") == ""  # a person owns the conversation now


@pytest.mark.one_shape
def test_two_questions_the_bot_cannot_answer_while_a_form_asks_a_person_takes_over(
        stack: Stack, visitor: Visitor) -> None:
    # (A word that is no order number is the form's business: it says so and asks again.)
    assert asks_order_number(visitor.say("where is my order"))
    assert "don't know" in visitor.say("do you sell replacement straps for the smartwatch?")
    handed_over = visitor.say("what is the name of your CEO's dog?")
    assert "not getting this right" in handed_over and "person from our team" in handed_over
    [(status, reason)] = rows(
        stack, "SELECT status, reason FROM handoff_requests WHERE sender_id LIKE :s",
        s=f"%:rest:{visitor.sender}")
    assert (status, reason) == ("queued", "misunderstood")


def test_return_collects_details_and_is_idempotent(visitor: Visitor) -> None:
    assert asks_order_number(visitor.say("I'd like to return the denim jacket"))
    assert asks_email(visitor.say("1002"))
    assert "reason" in visitor.say("sam@example.com").lower()
    first = visitor.say("It doesn't fit")
    reference = REFERENCE.search(first)
    assert reference and "Denim jacket" in first

    other = Visitor(visitor.stack)
    other.say("I want to return my jacket from order #1002, email sam@example.com")
    again = other.say("too small")
    assert reference.group(0) in again and "already" in again.lower()


@pytest.mark.one_shape
def test_return_asks_which_items_with_buttons(visitor: Visitor) -> None:
    visitor.say("I want to send something back")
    visitor.say("#1002")
    question = visitor.say("sam@example.com")
    assert "which item" in question.lower()
    assert {"Denim jacket", "Scarf"} <= {b["title"] for b in visitor.buttons()}
    assert "reason" in visitor.say("the scarf").lower()
    done = visitor.say("I no longer need it")
    assert REFERENCE.search(done) and "Scarf" in done


@pytest.mark.one_shape
def test_return_of_undelivered_order_is_explained(visitor: Visitor) -> None:
    visitor.say("I want to return my shoes")
    visitor.say("1001")
    answer = visitor.say("alex@example.com")
    assert "hasn't been delivered" in answer and not REFERENCE.search(answer)


@pytest.mark.one_shape
def test_return_outside_window_is_explained(visitor: Visitor) -> None:
    visitor.say("I want to return a coat")
    visitor.say("1003")
    answer = visitor.say("sam@example.com")
    assert "30 days" in answer and "closed" in answer


@pytest.mark.one_shape
def test_return_of_cancelled_order_is_explained(visitor: Visitor) -> None:
    answer = visitor.say("return the water bottle from order 1005, my email is kim@example.com")
    assert "cancelled" in answer


@pytest.mark.one_shape
def test_return_of_unshipped_order_is_explained(visitor: Visitor) -> None:
    answer = visitor.say("I want to return order 1004, email kim@example.com")
    assert "hasn't been delivered" in answer


@pytest.mark.one_shape
def test_fallback_is_honest_and_offers_a_person(visitor: Visitor) -> None:
    answer = visitor.say("what's the capital of mongolia, also tell me a joke")
    assert "don't know" in answer
    assert "/affirm" in [b["payload"] for b in visitor.buttons()]


@pytest.mark.one_shape
def test_smalltalk(visitor: Visitor) -> None:
    assert "Demo Outfitters" in visitor.say("hello")
    assert "virtual assistant" in visitor.say("am I talking to a bot?")
    assert "anything else" in visitor.say("thanks!").lower()
    assert visitor.say("bye")


@pytest.mark.one_shape
def test_cancel_in_the_middle_of_a_form(visitor: Visitor) -> None:
    assert asks_order_number(visitor.say("where's my package"))
    assert "stopped" in visitor.say("actually, cancel that")
    assert not asks_order_number(visitor.say("thanks"))


@pytest.mark.one_shape
def test_question_in_the_middle_of_a_form_then_carry_on(visitor: Visitor) -> None:
    visitor.say("where is my order")
    answer = visitor.say("are you a real person?")
    assert "virtual assistant" in answer and asks_order_number(answer)
    assert asks_email(visitor.say("1001"))


@pytest.mark.one_shape
def test_unrelated_question_in_the_middle_of_a_return_then_carry_on(visitor: Visitor) -> None:
    visitor.say("I need to return something")
    answer = visitor.say("what's the weather like in paris today?")
    # One question in the reply: the person offered, not that and the form's question at once
    # (tests/integration/test_form_exits.py). The form still waits for the number.
    assert "don't know" in answer and not asks_order_number(answer)
    assert asks_email(visitor.say("1002"))


@pytest.mark.one_shape
def test_switch_from_order_status_to_return(visitor: Visitor) -> None:
    status = visitor.say("where is order 1002? sam@example.com")
    assert "delivered" in status
    asked = visitor.say("ok I want to return the scarf")
    assert "reason" in asked.lower() and not asks_email(asked)
    done = visitor.say("damaged")
    assert REFERENCE.search(done) and "Scarf" in done


@pytest.mark.one_shape
def test_another_order_asks_for_its_number_but_not_the_email_again(visitor: Visitor) -> None:
    assert "Denim jacket" in visitor.say("where's order 1002? email sam@example.com")
    asked = visitor.say("and where is my other order?")
    assert asks_order_number(asked) and "Denim" not in asked
    answer = visitor.say("1003")
    assert "Wool coat" in answer and "delivered" in answer


@pytest.mark.one_shape
@pytest.mark.parametrize("number_given_before", [False, True])
def test_leaving_a_return_for_an_orders_status_with_its_number(visitor: Visitor,
                                                              number_given_before: bool) -> None:
    # The number in the switch was taken as the return's answer: "can't be returned yet".
    assert asks_order_number(visitor.say("I want to return something"))
    if number_given_before:
        assert asks_email(visitor.say("1001"))
        switch = "hmm actually can you just tell me where order 1001 is"
    else:
        switch = "actually forget the return, where is my order #1001?"
    assert asks_email(visitor.say(switch))
    answer = visitor.say("alex@example.com")
    assert "UPS" in answer and TRACKING in answer and "returned" not in answer


@pytest.mark.one_shape
def test_a_return_outside_the_window_offers_a_person_a_yes_with_the_story_gets_one(
        stack: Stack, visitor: Visitor) -> None:
    visitor.say("i want to return order 1003")
    refusal = visitor.say("sam@example.com")
    assert "closed" in refusal and refusal.endswith("Would you like me to pass you to them?")
    assert [b["payload"] for b in visitor.buttons()] == ["/human_handoff", "/deny"]
    accepted = visitor.say("yes pls, the coat's zipper broke")
    assert "person from our team" in accepted and "closed" not in accepted
    [(status, summary, last)] = rows(
        stack, "SELECT status, summary, last_message FROM handoff_requests "
               "WHERE sender_id LIKE :s", s=f"%:rest:{visitor.sender}")
    assert status == "queued" and "1003" in str(summary) and "zipper" in last
    assert visitor.say("hello?") == ""  # a person owns the conversation now


@pytest.mark.one_shape
def test_no_thanks_to_the_person_and_another_return_asks_which_order(visitor: Visitor) -> None:
    visitor.say("i want to return order 1003")
    visitor.say("sam@example.com")
    assert "anything else" in visitor.say("no thanks").lower()
    asked = visitor.say("I want to return something else")
    assert asks_order_number(asked) and "closed" not in asked


@pytest.mark.one_shape
def test_a_second_order_under_another_email_asks_for_it_and_uses_no_try(
        stack: Stack, visitor: Visitor) -> None:
    assert TRACKING in visitor.say("where is order 1001, alex@example.com")
    asked = visitor.say("and where is order 1004?")
    assert asked == "Which email address did you use for order #1004?"
    answer = visitor.say("kim@example.com")
    assert "#1004" in answer and "hasn't shipped" in answer
    # (That no try was counted against alex@example.com, #1004 or the client is
    # tests/actions/test_visitor_meant.py's: the stack's counts are shared by its tests.)
    # The same in a return: the scarf of #1002 after checking #1001.
    other = Visitor(stack)
    assert TRACKING in other.say("where is order 1001, alex@example.com")
    asked = other.say("can i return the scarf from 1002 instead?")
    assert asked == "Which email address did you use for order #1002?"


# Forms take natural answers (actions/answers.py): what fits the question is taken whatever
# NLU made of it; a real question is answered and the form asks again with what it has.

@pytest.fixture
def returnable(stack: Stack) -> None:
    """Order #1002 with no return requested yet (other tests return its items)."""
    engine = sync_engine(stack.database)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM return_requests WHERE order_number = '1002'"))
    finally:
        engine.dispose()


def start_return_of_1002(visitor: Visitor) -> str:
    assert asks_order_number(visitor.say("I want to return something"))
    assert asks_email(visitor.say("#1002"))
    question = visitor.say("sam@example.com")
    assert "which item" in question.lower()
    return question


@pytest.mark.one_shape
@pytest.mark.usefixtures("returnable")
def test_an_item_typed_as_the_button_shows_it_is_the_answer(visitor: Visitor) -> None:
    # NLU reads "Denim jacket" as a product question; it was answered from the catalogue and
    # the form then said it could not match anything in the order.
    start_return_of_1002(visitor)
    asked = visitor.say("Denim jacket")
    assert "reason" in asked.lower() and "couldn't match" not in asked
    done = visitor.say("too small")
    assert REFERENCE.search(done) and "return of Denim jacket from order #1002" in done


@pytest.mark.one_shape
@pytest.mark.usefixtures("returnable")
@pytest.mark.parametrize(("said", "items"), [("the second one", "Scarf"),
                                             ("all of them", "Denim jacket and Scarf"),
                                             ("the jaket", "Denim jacket"),
                                             ("2", "Scarf")])  # DIET tags it order_number
def test_items_by_position_all_of_them_and_with_a_typo(visitor: Visitor, said: str,
                                                       items: str) -> None:
    start_return_of_1002(visitor)
    assert "reason" in visitor.say(said).lower()
    done = visitor.say("changed my mind")
    assert REFERENCE.search(done) and f"return of {items} from order #1002" in done


@pytest.mark.one_shape
@pytest.mark.usefixtures("returnable")
def test_a_question_mid_form_is_answered_and_the_form_keeps_what_it_has(
        visitor: Visitor) -> None:
    start_return_of_1002(visitor)
    answer = visitor.say("how long does shipping take?")
    knowledge = [r for r in visitor.replies if (r.get("custom") or {}).get("knowledge")]
    assert knowledge and "which item" in answer.lower()
    assert "reason" in visitor.say("the scarf").lower()
    again = visitor.say("is return shipping free?")
    assert "reason" in again.lower()
    done = visitor.say("it doesn't fit")
    assert REFERENCE.search(done) and "return of Scarf from order #1002" in done


@pytest.mark.one_shape
def test_a_corrected_order_number_and_an_email_with_a_full_stop(visitor: Visitor) -> None:
    visitor.say("where is my order?")
    assert asks_email(visitor.say("1002"))
    assert asks_email(visitor.say("sorry, it's 1001"))
    answer = visitor.say("my email is alex@example.com.")
    assert "#1001" in answer and "UPS" in answer and TRACKING in answer


@pytest.mark.one_shape
def test_a_cancelled_flow_leaves_no_order_number_behind(visitor: Visitor) -> None:
    visitor.say("I want to return something")
    assert asks_email(visitor.say("1002"))
    assert "stopped" in visitor.say("never mind")
    assert asks_order_number(visitor.say("where is my order?"))
    assert asks_email(visitor.say("1001"))


@pytest.mark.one_shape
def test_a_statement_that_is_not_an_order_number_gets_the_form_explaining(
        visitor: Visitor) -> None:
    visitor.say("where is my order?")
    answer = visitor.say("it's the one from last week")
    assert "doesn't look like an order number" in answer and asks_order_number(answer)


def test_conversations_are_stored_where_the_environment_says(visitor: Visitor) -> None:
    visitor.say("hi there")
    stack = visitor.stack
    url = stack.database_url or f"sqlite:///{stack.var_dir / 'rasa-tracker.db'}"
    ours = stack.database_url or f"sqlite:///{stack.var_dir / 'switchboard.db'}"
    engine = sync_engine(url)
    our_engine = sync_engine(ours)
    try:
        with engine.connect() as conn:
            events = conn.execute(
                text("SELECT count(*) FROM events WHERE sender_id LIKE :s"),
                {"s": f"%:rest:{visitor.sender}"},
            ).scalar_one()
        # The visitor's message is stored before the answer; the bot's reply is stored just
        # after the answer goes out (connectors/relay.py), so give it a moment (bounded).
        deadline = time.monotonic() + 10
        while True:
            with our_engine.connect() as conn:
                stored = conn.execute(
                    text("SELECT direction, text FROM messages WHERE sender_id LIKE :s "
                         "ORDER BY id"),
                    {"s": f"%:rest:{visitor.sender}"},
                ).all()
            if len(stored) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        engine.dispose()
        our_engine.dispose()
    assert events > 0
    assert [row[0] for row in stored] == ["in", "out"] and stored[0][1] == "hi there"


def test_each_shop_sees_only_its_own_orders(stack: Stack) -> None:
    added = subprocess.run(
        [str(APP_PY), "-m", "tenants", "add", "--slug", "second-shop", "--name", "Second Shop"],
        cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=60,
    )
    assert added.returncode == 0, added.stderr
    url = stack.database_url or f"sqlite:///{stack.var_dir / 'switchboard.db'}"
    engine = sync_engine(url)
    with engine.begin() as conn:
        tenant_id = conn.execute(
            text("SELECT id FROM tenants WHERE slug = 'second-shop'")).scalar_one()
        order_id = conn.execute(
            text("INSERT INTO demo_orders (tenant_id, number, email, status, placed_at, "
                 "shipped_at, carrier, tracking_number) VALUES (:t, '1001', "
                 "'canary@second.example', 'shipped', :now, :now, 'DHL', 'CANARY123') "
                 "RETURNING id"),
            {"t": tenant_id, "now": datetime.now(UTC)},
        ).scalar_one()
        conn.execute(text("INSERT INTO demo_order_items (order_id, name, quantity) "
                          "VALUES (:o, 'Canary lamp', 1)"), {"o": order_id})
    engine.dispose()
    created = subprocess.run(
        [str(APP_PY), "-m", "tenants", "keys", "create", "--tenant", "second-shop",
         "--name", "tests"], cwd=ROOT, env=stack.env(), capture_output=True, text=True,
        timeout=60)
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[0]

    own = Visitor(stack, tenant="second-shop", key=key).say(
        "where is order 1001? my email is canary@second.example")
    assert "Canary lamp" in own and "CANARY123" in own
    other_shops_email = Visitor(stack, tenant="second-shop", key=key).say(
        "where is order 1001? my email is alex@example.com")
    assert "couldn't find" in other_shops_email and "UPS" not in other_shops_email
    from_demo = Visitor(stack).say("where is order 1001? my email is canary@second.example")
    assert "couldn't find" in from_demo and "Canary" not in from_demo and "CANARY" not in from_demo


def forget_failed_verifications(stack: Stack) -> None:
    """Failed checks count across conversations (actions/attempts.py): a test that locks an
    email or this client's address out clears the counts, so later tests start afresh."""
    engine = sync_engine(stack.database)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM verification_failures"))
    engine.dispose()
    if stack.redis_url:
        redis = Redis.from_url(stack.redis_url)
        for key in [*redis.scan_iter("sb:vfail:*"), *redis.scan_iter("sb:vlock:*")]:
            redis.delete(key)
        redis.close()


def test_a_sender_id_taken_over_later_must_prove_the_order_again(stack: Stack) -> None:
    """Issue 12's takeover: a visitor on sender `me` checks #1002; whoever posts as the same
    sender in a new session gets asked for the details again, and nothing about the order."""
    customer = Visitor(stack)
    assert "DHL" in customer.say("where is order #1002? my email is sam@example.com")
    intruder = Visitor(stack)
    intruder.sender = customer.sender  # the REST sender is whatever the client says
    intruder.say("/session_start")  # a new session, as after an hour of silence
    secrets = ("DHL", "JD014600006281230704", "Denim", "Scarf", "delivered")
    asked = intruder.say("where is my order?")
    assert asks_order_number(asked)
    asked = intruder.say("1002")
    assert asks_email(asked) and not any(s in asked for s in secrets), asked
    intruder.say("stop")
    returning = intruder.say("I want to return it")
    assert asks_order_number(returning) and not any(s in returning for s in secrets)


def test_brute_force_across_senders_locks_the_guesser_not_the_customer(stack: Stack) -> None:
    """Walking order numbers for a known email, a new conversation for every try: past
    LIMITS["email"] failures the email is contested (actions/attempts.py): a conversation
    then gets CONTESTED_LIMIT failures with it before it is locked, even for the right pair,
    and a person is offered; the customer, asking with the right pair from a conversation of
    their own, is answered (a known email no longer keeps its owner out of self-service)."""
    try:
        for n in range(LIMITS["email"]):
            reply = Visitor(stack).say(f"where is order #{7001 + n}? my email is kim@example.com")
            assert "couldn't find" in reply, reply
        guesser = Visitor(stack)
        for n in range(CONTESTED_LIMIT - 1):
            reply = guesser.say(f"where is order #{7901 + n}? my email is kim@example.com")
            assert "couldn't find" in reply, reply
        reply = guesser.say("where is order #7999? my email is kim@example.com")
        assert "too many unsuccessful attempts" in reply, reply
        assert "/human_handoff" in [b["payload"] for b in guesser.buttons()]
        reply = guesser.say("where is order #1004? my email is kim@example.com")
        assert "too many unsuccessful attempts" in reply and "Backpack" not in reply, reply
        # A restart gives the guesser's conversation no fresh tries either.
        guesser.say("/restart")
        reply = guesser.say("where is order #1004? my email is kim@example.com")
        assert "too many unsuccessful attempts" in reply and "Backpack" not in reply, reply
        customer = Visitor(stack)
        reply = customer.say("where is order #1004? my email is kim@example.com")
        assert "Backpack" in reply and "too many unsuccessful attempts" not in reply, reply
    finally:
        forget_failed_verifications(stack)


def test_one_shop_servers_visitors_do_not_lock_each_other_out(stack: Stack) -> None:
    """Every REST visitor comes through the shop's own server, from one address: their typos
    count per sender, email and order, never against that address (ten would lock everyone)."""
    try:
        for n in range(LIMITS["client"]):
            reply = Visitor(stack).say(f"where is order #{7101 + n}? my email is "
                                       f"typo{n}@example.org")
            assert "couldn't find" in reply, reply
        reply = Visitor(stack).say("where is order #1001? my email is alex@example.com")
        assert "UPS" in reply and "too many unsuccessful attempts" not in reply, reply
    finally:
        forget_failed_verifications(stack)


def test_outages_answer_503_and_recover(stack: Stack) -> None:
    """Runs last in this module: it stops and restarts processes of the shared stack."""
    visitor = Visitor(stack)
    stack.stop_process("actions")
    response = httpx.post(f"{stack.gateway}/channels/demo/rest/webhook",
                          json={"sender": visitor.sender, "message": "hello"},
                          headers=stack.rest_headers(), timeout=30)
    assert response.status_code == 503 and "action server" in response.json()["detail"]
    stack.start_actions()
    stack.stop_process("bot")
    started = time.monotonic()
    response = httpx.post(f"{stack.gateway}/channels/demo/rest/webhook",
                          json={"sender": visitor.sender, "message": "hello"},
                          headers=stack.rest_headers(), timeout=30)
    assert response.status_code == 503 and time.monotonic() - started < 5
    details = httpx.get(f"{stack.gateway}/health/details", timeout=10).json()  # from loopback
    assert details["checks"]["rasa"]["ok"] is False
    stack.start_rasa()
    stack.wait_healthy(180)
    assert "Demo Outfitters" in Visitor(stack).say("hello")

