"""Questions rewritten for retrieval (knowledge/query.py): chat dropped, shorthand spelled
out, typos corrected to the shop's own words and nothing else."""

from __future__ import annotations

import re

import pytest

from knowledge.query import Rewriter, edit_distance, is_english

SHOP_WORDS = re.findall(r"[A-Za-z]+", """Payment methods You can pay with PayPal Klarna and
American Express. Forgot your password? Create an account. Your invoice is sent as a PDF.
Refunds go to the original payment method. Write a review. Unsubscribe at the bottom of any
newsletter. Delete account.
Registered at Amtsgericht Hamburg. Delivery address""")


@pytest.fixture(scope="module")
def rewriter() -> Rewriter:
    return Rewriter(SHOP_WORDS)


@pytest.mark.parametrize(("asked", "meant"), [
    ("hi there, I was wondering which payment options you accept",
     "which payment options you accept"),
    ("hello! quick question - can i pay with klarna?", "can i pay with klarna?"),
    ("Hey team, sorry to bother you but do you take paypal? thanks in advance",
     "do you take paypal?"),
    ("rfund policy pls", "refund policy"),
    ("wich paymnet methods do u hav", "which payment methods do you have"),
    ("pasword forgotten", "password forgotten"),
    ("how do i write a product reveiw", "how do i write a product review"),
    ("invoce missing", "invoice missing"),
    ("delte acount", "delete account"),
    ("unsubscrbe", "unsubscribe"),
    ("how to regster", "how to register (create account)"),  # "Registered": the shop's word
    ("where is your hamburg shop", "where is your hamburg shop (store)"),
    ("is your online shop safe", "is your online shop safe"),  # the website, not a store
    ("email address for support?", "email address for support? (customer service)"),
    ("do you support apple pay", "do you support apple pay"),  # the verb
    ("is there a physical shop I can visit", "is there a physical shop I can visit (store)"),
    ("can i shop without an account", "can i shop without an account"),
    ("do you take amex", "do you take American Express"),
    ("login not working", "log in not working"),
    # Support-chat request frames: the ask is what follows them.
    ("I need assistance to reset my password", "reset my password"),
    ("can you help me see your payment options?", "your payment options?"),
    ("I want to check the payment methods", "the payment methods"),
    ("can I get news about new products by email",
     "can I get news about new products by email (newsletter)"),
    ("I need assistance closing my user account", "closing my account (delete account)"),
    ("I want to know what payment methods you accept", "what payment methods you accept"),
    ("i need some help with my invoice please", "my invoice"),
])
def test_rewrites_what_shoppers_type(rewriter: Rewriter, asked: str, meant: str) -> None:
    assert rewriter.rewrite(asked) == meant


@pytest.mark.parametrize("asked", [
    "do you sell tents",  # a real word the shop never writes: abstention must still see it
    "can i deactivate notifications",  # "de" + "activate", not a typo of anything
    "can i bring my dog",
    "do you ship to JKT-DENIM-M in 42.5",  # SKUs and sizes pass through
])
def test_leaves_real_words_alone(rewriter: Rewriter, asked: str) -> None:
    assert rewriter.rewrite(asked) == asked


def test_a_bare_greeting_is_kept_as_asked(rewriter: Rewriter) -> None:
    assert rewriter.rewrite("hi!") == "hi!"


@pytest.mark.parametrize("asked", ["I need help", "can you help me",
                                   "what email do i write to for help",
                                   "how do I check my gift card balance?",  # not an opening
                                   "check my order status"])
def test_help_that_is_the_whole_ask_stays(rewriter: Rewriter, asked: str) -> None:
    assert rewriter.rewrite(asked) == asked


def test_without_the_shops_words_nothing_is_corrected() -> None:
    assert Rewriter([]).rewrite("pasword forgotten") == "pasword forgotten"


def test_edit_distance_counts_a_transposition_once() -> None:
    assert edit_distance("paymnet", "payment") == 1
    assert edit_distance("rfund", "refund") == 1
    assert edit_distance("tent", "text") == 1
    assert edit_distance("abc", "abc") == 0


def test_english_words_with_common_affixes() -> None:
    assert is_english("deactivate") and is_english("tents") and is_english("review")
    assert not is_english("paymnet") and not is_english("reveiw")


@pytest.mark.parametrize(("asked", "meant"), [
    ("I need to see my bill", "I need to see my bill (invoice)"),
    ("where do i leave feedback", "where do i leave feedback (review)"),
    ("how can I sign up?", "how can I sign up? (create account)"),
    ("how do i sign up for the newsletter", "how do i sign up for the newsletter"),
    ("cancel my account", "cancel my account (delete account)"),
    ("get rid of my account NOW", "get rid of my account NOW (delete account)"),
    ("which courier do you use", "which courier do you use (carrier)"),
    ("can i get it tomorrow?", "can i get it tomorrow? (express delivery)"),
    ("is there a quicker option", "is there a quicker option (express delivery)"),
    ("can you wrap it as a present", "can you wrap it as a present (gift)"),
    ("are you hiring", "are you hiring (jobs)"),
    ("how eco friendly is your stuff", "how eco friendly is your stuff (sustainable)"),
    ("what are the benefits of having an account",
     "what are the benefits of having an account (with an account you can)"),
    ("which payment modalities do you offer", "which payment modalities do you offer (methods)"),
    ("what shipping methods are there",
     "what shipping methods are there (standard express delivery)"),
    ("how do i open a new account", "how do i open a new account (create account)"),
    ("I need to retrieve my PIN", "I need to retrieve my PIN (password)"),
    ("i need help restoring my pass", "restoring my pass (password)"),
    ("I don't want my account anymore", "I don't want my account anymore (delete account)"),
    ("is there a newsletter i can sign up to", "is there a newsletter i can sign up to"),
    ("when can i ask for reimbursements", "when can i ask for reimbursements (refund)"),
    ("where do I leave a comment about your company",
     "where do I leave a comment about your company (review)"),
    ("how can i pay for my purchase", "how can i pay for my purchase (payment methods)"),
    ("the ways you can deliver my order",
     "the ways you can deliver my order (standard express delivery)"),
    ("the shipping address is wrong", "the shipping address is wrong (change address)"),
])
def test_adds_the_shop_pages_word_for_a_shoppers_word(rewriter: Rewriter, asked: str,
                                                      meant: str) -> None:
    assert rewriter.rewrite(asked) == meant


@pytest.mark.parametrize("asked", [
    "what's the weather like tomorrow",  # no delivery in it
    "at present, do you ship to norway",  # the present time, not a gift
    "do you have green jackets",  # a colour, not the environment
    "which jacket dries faster",  # no delivery in it either
    "i can't open my account",  # a way in, not a new account
    "I forgot my discount code",  # a code, not the password
    "can i leave a comment on my order for the driver",  # a note, not a review
    "the address on my invoice is wrong",  # the invoice's, not the delivery's
    "how do i send it back",  # a return, not a way of delivering
])
def test_adds_nothing_for_the_same_words_meaning_something_else(rewriter: Rewriter,
                                                                asked: str) -> None:
    assert rewriter.rewrite(asked) == asked


def test_words_read_as_the_pages_ones_are_understood_not_unknown() -> None:
    """A shopper's word followed by the page's own is no sign the shop lacks the topic
    (knowledge/index.py leaves it out of the unknown words that make retrieval abstain)."""
    assert Rewriter.understood("do you delete bad ratings") == ["ratings"]
    assert Rewriter.understood("some feedback on the boots, from zurich") == ["feedback", "zurich"]
    assert Rewriter.understood("can i bring my dog") == []


@pytest.mark.parametrize(("asked", "meant"), [
    ("how do I terminate my platinum account", "how do I terminate my account (delete account)"),
    ("I have to know which payment methods are allowed", "which payment methods are allowed"),
    ("show me the bill of John Williams", "the bill of John Williams (invoice)"),
])
def test_drops_what_says_nothing_the_pages_need(rewriter: Rewriter, asked: str,
                                                meant: str) -> None:
    assert rewriter.rewrite(asked) == meant


def test_a_kind_of_account_the_shop_writes_about_stays() -> None:
    business = Rewriter(SHOP_WORDS + ["business", "accounts"])
    assert business.rewrite("how do I open a business account") == \
        "how do I open a business account (create account)"


def test_the_embedding_reads_the_ask_without_a_persons_name(rewriter: Rewriter) -> None:
    meant, searched = rewriter.rewrites("I need the invoice from Jane Smith")
    assert meant == "I need the invoice from"
    assert searched == "I need the invoice from Jane Smith"
    assert Rewriter.understood("the invoice from Jane Smith") == ["Jane Smith"]
    assert Rewriter.understood("do you ship to canada") == ["canada"]
    # capitalised words the shop writes are a thing it sells, not a person
    shop = Rewriter(SHOP_WORDS + ["Alpine", "Leather", "Boots"])
    assert shop.rewrites("what is the price of Alpine Leather Boots")[0] == \
        "what is the price of Alpine Leather Boots"
