"""What reaches the bot from an email: the visitor's new words, one turn per question."""

from __future__ import annotations

import pytest

from connectors.channels.email.text import MAX_TURNS, html_to_text, split_questions, strip_reply

GMAIL = (
    "Where is my order #1001?\r\n\r\nThanks,\r\nAlex\r\n\r\n"
    "On Mon, 3 Jun 2024 at 10:12, Demo Shop Support <support@shop.example> wrote:\r\n"
    "> Hello Alex,\r\n> your order has shipped.\r\n"
)
GMAIL_WRAPPED = (
    "Where is it?\n\nOn Mon, 3 Jun 2024 at 10:12, Demo Shop Support Team With A Long Name <\n"
    "support@shop.example> wrote:\n> Hello\n"
)
OUTLOOK = (
    "Can I return the blue jacket?\n\n-----Original Message-----\n"
    "From: Demo Shop Support <support@shop.example>\nSent: Monday, June 3, 2024 10:12 AM\n"
    "To: Alex\nSubject: Your order\n\nHello Alex\n"
)
OUTLOOK_HEADER_BLOCK = (
    "Can I return the blue jacket?\n\nFrom: Demo Shop Support <support@shop.example>\n"
    "Sent: Monday, June 3, 2024 10:12 AM\nTo: Alex <alex@example.com>\nSubject: RE: Your order\n\n"
    "Hello\n"
)
APPLE = (
    "Do you ship to Canada?\n\nSent from my iPhone\n\n"
    "> On 3 Jun 2024, at 10:12, Demo Shop Support <support@shop.example> wrote:\n> \n> Hello\n"
)
GERMAN = (
    "Wo ist meine Bestellung?\n\nViele Grüße\nAnna\n\n"
    "Am Mo., 3. Juni 2024 um 10:12 Uhr schrieb Demo Shop <support@shop.example>:\n> Hallo Anna\n"
)
FRENCH = (
    "Où est mon colis ?\n\n"
    "Le lun. 3 juin 2024 à 10:12, Demo Shop <support@shop.example> a écrit :\n"
    "> Bonjour\n"
)
SIGNATURE = "Where is my parcel?\n\n-- \nAlex Miller\nACME Corp | +1 555 0100\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GMAIL, "Where is my order #1001?"),
        (GMAIL_WRAPPED, "Where is it?"),
        (OUTLOOK, "Can I return the blue jacket?"),
        (OUTLOOK_HEADER_BLOCK, "Can I return the blue jacket?"),
        (APPLE, "Do you ship to Canada?"),
        (GERMAN, "Wo ist meine Bestellung?"),
        (FRENCH, "Où est mon colis ?"),
        (SIGNATURE, "Where is my parcel?"),
    ],
    ids=["gmail", "gmail-wrapped", "outlook", "outlook-headers", "apple", "german", "french",
         "dash-dash-signature"],
)
def test_quoted_history_and_signature_are_cut(body: str, expected: str) -> None:
    assert strip_reply(body) == expected


def test_inline_quote_lines_are_dropped_but_own_text_kept() -> None:
    body = "> you said returns take 14 days\nWhy is mine taking longer?\n"
    assert strip_reply(body) == "Why is mine taking longer?"


def test_a_message_without_history_is_unchanged() -> None:
    body = "My order #1002 arrived damaged.\nThe box was open."
    assert strip_reply(body) == body


def test_html_keeps_paragraphs_lines_and_list_items() -> None:
    html = (
        "<html><head><style>p{margin:0}</style><title>x</title></head><body>"
        "<div>Hi,</div><div><br></div><div>Where is my\n   order?</div>"
        "<ul><li>blue jacket</li><li>red scarf</li></ul>"
        "<p>Order <b>#1001</b> &amp; <a href='https://x.example'>#1002</a></p>"
        "<script>alert(1)</script></body></html>"
    )
    assert html_to_text(html) == (
        "Hi,\n\nWhere is my order?\n\n- blue jacket\n- red scarf\n\nOrder #1001 & #1002"
    )


def test_html_blockquote_history_is_cut_like_plain_text() -> None:
    html = (
        '<div dir="ltr">Can I change the address?</div><br><div class="gmail_quote">'
        '<div class="gmail_attr">On Mon, 3 Jun 2024 at 09:58, '
        'Demo Shop &lt;support@shop.example&gt;'
        ' wrote:<br></div><blockquote class="gmail_quote">Hello<br>your order shipped'
        "</blockquote></div>"
    )
    assert strip_reply(html_to_text(html)) == "Can I change the address?"


def test_three_questions_become_three_turns() -> None:
    text = (
        "Hello team,\n\nWhere is order #1003?\n\nCan I return shoes I bought in the sale?\n\n"
        "And do you ship to Canada?\n\nThank you!\nPriya"
    )
    assert split_questions(text) == [
        "Where is order #1003?",
        "Can I return shoes I bought in the sale?",
        "And do you ship to Canada?",
    ]


def test_a_statement_stays_with_the_question_it_follows() -> None:
    text = "Where is order #1001? My email is alex@example.com. Can I also return the scarf?"
    assert split_questions(text) == [
        "Where is order #1001? My email is alex@example.com.",
        "Can I also return the scarf?",
    ]


def test_context_before_the_first_question_stays_with_it() -> None:
    text = "I ordered a jacket last week.\nIt has not arrived.\n\nWhere is it?\n\nOrder 1001."
    assert split_questions(text) == ["I ordered a jacket last week. It has not arrived. "
                                     "Where is it? Order 1001."]


def test_no_question_is_one_turn_without_greeting_or_sign_off() -> None:
    text = ("Hi there,\n\nThe parcel arrived, all good.\nJust wanted to let you know."
            "\n\nCheers,\nAlex")
    assert split_questions(text) == ["The parcel arrived, all good. Just wanted to let you know."]


def test_only_thanks_is_still_one_turn() -> None:
    assert split_questions("Thanks!") == ["Thanks!"]
    assert split_questions("   ") == []


def test_turns_are_capped_and_the_rest_joined_into_the_last() -> None:
    text = " ".join(f"Question {i}?" for i in range(1, 9))
    turns = split_questions(text)
    assert len(turns) == MAX_TURNS
    assert turns[-1] == "Question 5? Question 6? Question 7? Question 8?"
