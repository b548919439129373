"""Does the visitor's message answer the question a form just asked?

While a form asks for something, an answer that fits the question is taken for it before any
intent decides otherwise: NLU classifies `Denim jacket` (the title of the button the bot just
showed) as a product question, `too small` as a fallback and `sorry, it's 1001` as anything
at all, yet each is plainly the answer. Only a message that does not fit is left to the rules
(data/rules): a question about shipping is answered and the form asks again, `cancel` stops
it, a request for a person hands off. Everything here is plain text work on the message and
the order, so the form validators (actions/verification.py, actions/returns.py) stay thin.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from actions.cards import without_cards
from actions.commerce.base import LineItem
from core.asking import defers

# Intents that, when the message does not fit the question, lead somewhere else: each has a
# rule for the forms (data/rules/order_status.yml, data/rules/return.yml), so the form rejects
# the turn and the rule answers, switches, stops or hands off.
CONTROL_INTENTS = frozenset({"stop", "human_handoff", "check_order_status", "request_return",
                             "greet", "thank", "goodbye", "bot_challenge"})
KNOWLEDGE_INTENTS = frozenset({"ask_question", "out_of_scope", "nlu_fallback"})
SMALLTALK_INTENTS = frozenset({"greet", "thank", "goodbye", "bot_challenge"})

# A message that opens like a question: "how long…", "do you…", "can I…", "is it…".
# "does not fit" and "when I tried it on…" are answers, hence the subject after the verb
# and "when" only before a verb.
_QUESTION_START = re.compile(
    r"^\W*(?:(?:ok|okay|so|and|also|hi|hey|hello|um+|well|right|oh|btw|but|quick question)"
    r"\b\W*)*"
    r"(?:what|what's|whats|how|how's|where|where's|why|which|who|whom|whose"
    r"|when\s+(?:do|does|did|is|are|will|would|can|could|should|shall)"
    r"|(?:do|does|did|can|could|will|would|should|shall|may|might|have|has)"
    r"\s+(?:i|you|u|we|they|it|he|she|there|this|that|these|those|the|my|your|our|a|an)\b"
    # "is return shipping free", but not "is too small", "was broken when it came".
    r"|(?:is|are|was|were)\s+(?!(?:too|not|very|really|so|quite|a|bit|kind|broken|damaged"
    r"|ripped|torn|faulty|defective|small|big|tight|loose|wrong|missing|scratched|stained"
    r"|itchy|late|different|ugly|cheap|poor|worn|dirty|used|fake|smaller|bigger|shorter"
    r"|longer)\b)\w)",
    re.I,
)
# A typed cancellation. Only these stop a form that asked for a free-text reason: "I don't
# want it anymore" and "I changed my mind" are reasons, even when NLU calls them `stop`.
_CANCEL = re.compile(
    r"\b(?:cancel|stop|abort|quit|forget (?:it|that|about it)|never\s?mind|nevermind|nvm"
    r"|(?:don'?t|do not|no longer) want to (?:return|send)|not (?:returning|sending)"
    r"|leave it)\b",
    re.I,
)
_ASKS_FOR_PERSON = re.compile(
    r"\b(?:human|person|people|agent|someone|somebody|staff|team|representative|operator"
    r"|manager|real|talk|speak|call|chat|support|service|employee|colleague)\b", re.I)
_ASKS_ABOUT_ORDER = re.compile(
    r"\b(?:where|track\w*|status|when (?:will|does|do|is)|other order|order\s*#?\d)|#\d", re.I)
# Words of the other flow's own, which a message that switches flows uses besides any order
# number or email it also holds: "forget the return, where is my order #1001?" asks where it
# is; "order 1001" alone answers the question. Where-words for the order status form, return
# words for the return form (switches_flow). "It arrived damaged" is a reason for a return,
# so arriving counts only in a question ("did it arrive", "when will it arrive").
_ASKS_WHERE = re.compile(
    r"\b(?:where|wheres|where's|track\w*|status|on (?:its|it's|the) way|eta"
    r"|when (?:will|does|do|did|is|are|can)|ship(?:ped)? yet"
    r"|(?:has|have|did)\b[^.,;!?]{0,30}\b(?:ship|arriv|deliver)\w*)", re.I)
_WANTS_RETURN = re.compile(
    r"\b(?:return\w*|send\w* (?:\w+ ){0,4}back|refund\w*|exchange\w*)\b", re.I)
# A yes that opens a message: "yes pls, the coat's zipper broke", "yeah please", "sure!".
# "ok" and "please" alone are not: "ok, I want to return the scarf then" acknowledges.
_OPENS_WITH_YES = re.compile(
    r"^\W*(?:(?:ok|okay|oh|um+|well|hmm+)\W+)?"
    r"(?:y|yes+|yeah|yea|yah|yep|yup|ya|ye|yas|sure|absolutely|definitely|of course"
    r"|please do|pls do|go ahead|that would be (?:great|good|nice|helpful)|i'?d like that)"
    r"(?!\w)(?!\s*(?:but|,\s*but)\b)", re.I)
_ENDS_WITH_QUESTION_MARK = re.compile(
    r"\?(?:\s*(?:pls|please|thanks|thx|thank you|ty|lol|:\)|:-\)))*[\s!?.:)(]*$", re.I)
_ORDER_NUMBER = re.compile(r"(?<![\d@])#?\s?(\d{4,10})(?![\d@])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+\s?@\s?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

_ALL = re.compile(
    r"\b(?:all|both|everything|every\s?(?:item|thing)|whole (?:order|lot|thing)"
    r"|entire order|the lot)\b", re.I)
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3,
             "fourth": 4, "4th": 4, "fifth": 5, "5th": 5, "former": 1}
_LAST = frozenset({"last", "latter", "final"})
_PICK = frozenset({"one", "item", "thing", "product", "option", "choice", "on", "in", "from"})
_NUMBER_WORD = re.compile(r"^\W*(?:(?:item|number|no\.?|nr\.?|#)\s*)?(\d)\W*$", re.I)
# "except the scarf", "not the jacket", "all but the scarf": what follows is left out.
_EXCEPT = re.compile(
    r"\b(?:except(?: for)?|but not|all but|not|apart from|other than|excluding|minus)\b"
    r"([^,;.!?]*)", re.I)
_ONLY_IT = re.compile(r"\b(?:it|that|this|them|those|these)\b", re.I)

_PLEASANTRIES = frozenset({
    "thanks", "thank", "you", "thx", "ty", "cheers", "hi", "hello", "hey", "there", "ok", "okay",
    "great", "cool", "please", "pls", "so", "much", "a", "lot", "very", "good", "morning",
    "evening", "afternoon", "again", "awesome", "perfect", "nice", "lovely", "bye", "goodbye",
    "see", "later", "for", "now", "day", "have",
})
# Words that carry no product meaning in an answer about items.
_STOPWORDS = frozenset({
    "the", "and", "my", "a", "an", "of", "pair", "pack", "set", "with", "for", "in", "or", "&",
    "just", "only", "please", "pls", "plz", "thanks", "thank", "you", "i", "i'd", "id", "i'm",
    "want", "wanna", "would", "like", "to", "return", "returning", "send", "back", "it", "them",
    "one", "ones", "item", "items", "thing", "things", "both", "all", "everything",
    "is", "its", "it's", "that", "this", "those", "these", "yes", "yeah", "ok", "okay", "sure",
    "so", "um", "uh", "hmm", "well", "oh", "ah", "sorry", "actually", "also", "too", "as",
    "oops", "mean", "meant", "we", "our", "me", "need", "needs", "be", "returned", "go",
    "from", "order", "on", "at", "which", "whichever", "lol", "then", "now", "whole", "entire",
    "lot", "every",
})


@dataclass(frozen=True)
class Turn:
    """The visitor's latest message, as the form's validation action sees it."""

    text: str
    intent: str
    confidence: float

    @classmethod
    def of(cls, latest_message: dict[str, Any]) -> Turn:
        intent = latest_message.get("intent") or {}
        return cls(text=str(latest_message.get("text") or "").strip(),
                   intent=str(intent.get("name") or ""),
                   confidence=float(intent.get("confidence") or 0.0))

    @property
    def is_payload(self) -> bool:
        """A button payload such as `/human_handoff`: an intent, never an answer."""
        return self.text.startswith("/")

    @property
    def words(self) -> list[str]:
        return re.findall(r"[\w'&]+", self.text.lower())


def opens_like_question(text: str) -> bool:
    """A clause opens like a question: "right, do you ship to canada", "how much is it"."""
    return any(_QUESTION_START.match(clause) for clause in re.split(r"[,;.!:]\s*", text))


def question_like(text: str) -> bool:
    """Reads as a question: opens like one, or ends with a question mark ("shipping to the
    UK?!", "paypal ok? thanks")."""
    return bool(_ENDS_WITH_QUESTION_MARK.search(text)) or opens_like_question(text)


def cancels(text: str) -> bool:
    return bool(_CANCEL.search(text))


def order_number_in(text: str) -> str | None:
    """'1001', '#1001', 'order#1001', 'no.1001', 'sorry, it's 1001.' -> '1001'; never the last
    four digits of a card number the gateway masked ("**** **** **** 1111")."""
    found = _ORDER_NUMBER.search(without_cards(text))
    return found.group(1) if found else None


def email_in(text: str) -> str | None:
    """The email in a message, without the full stop or brackets around it."""
    found = _EMAIL.search(text)
    return re.sub(r"\s", "", found.group(0)) if found else None


def leads_elsewhere(turn: Turn, form: str) -> bool:
    """A message that does not answer should go to the rules (True) rather than be taken as a
    failed attempt to answer (False: the form says what it needs and asks again).

    Intents with a rule during forms go to their rule; whatever NLU calls a question, a topic
    or is unsure about goes to the knowledge route (which answers, or offers a person), as it
    would outside a form. An `inform` that fits nothing is a failed answer ("the blue one")
    unless it reads as a question ("and to canada?"). Asking to return something while the
    return form runs is an answer too, unless it is a question about returns.
    """
    if turn.is_payload:
        return True
    if form == "return_form" and turn.intent == "request_return":
        return question_like(turn.text)  # "how long do refunds take?" (data/rules/return.yml)
    if turn.intent in CONTROL_INTENTS | KNOWLEDGE_INTENTS:
        return True
    # By the rule for an `inform` that answers nothing (data/rules/knowledge.yml).
    return turn.intent == "inform" and question_like(turn.text)


def switches_flow(turn: Turn, form: str) -> bool:
    """The message asks for the other flow in words of its own while `form` runs, whatever
    order number or email it also holds: the form must not take those as its answers (the
    rule for the switch then runs, data/rules). "Actually forget the return, where is my
    order #1001?" leaves the return form; "#1001" or "order 1001" answer it."""
    if turn.is_payload:
        return False
    if form == "return_form":
        return turn.intent == "check_order_status" and bool(_ASKS_WHERE.search(turn.text))
    if form == "order_status_form":
        return turn.intent == "request_return" and bool(_WANTS_RETURN.search(turn.text))
    return False


def opens_with_yes(text: str) -> bool:
    """"yes pls, the coat's zipper broke", "yeah", "sure, thanks": a yes, whatever follows.
    Not "yes but…", and not a bare "ok" (an acknowledgement)."""
    return bool(_OPENS_WITH_YES.match(text))


def reason_in(turn: Turn) -> str | None:
    """A return reason is anything typed in answer, unless it plainly means something else:
    a cancellation, a request for a person or an order, a question, a bare greeting or thanks,
    a goodbye or thanks that puts it off for later.

    Reasons are short and often end in a question mark ("too small?"), so a question mark
    alone makes a question only when NLU also took the message for one."""
    text = turn.text.strip()
    if turn.is_payload or len(text) < 2 or not re.search(r"\w", text):
        return None
    # A reason NLU misreads as a switch ("the zip is borken" as check_order_status) would
    # lose the whole return, so a switch needs words of its own.
    if turn.intent == "human_handoff" and _ASKS_FOR_PERSON.search(text):
        return None
    if turn.intent == "check_order_status" and _ASKS_ABOUT_ORDER.search(text):
        return None
    if cancels(text) and turn.intent in {"stop", "deny", "goodbye"} | KNOWLEDGE_INTENTS:
        return None
    if turn.intent in SMALLTALK_INTENTS and (
            question_like(text) or defers(text) or not set(turn.words) - _PLEASANTRIES):
        # "thanks!", "hi there", "are you a bot?", "ok thanks I'll check later" (leaving for
        # now: the goodbye's rule ends the form); not "doesnt fit thx"
        return None
    if turn.intent in {"ask_question", "out_of_scope"} and question_like(text):
        return None
    if opens_like_question(text):
        return None
    return text[:500]


def _singular(word: str) -> str:
    """Enough English plural folding for product nouns: scarves, dresses, batteries, socks."""
    if len(word) <= 3 or not word.endswith("s") or word.endswith("ss"):
        return word
    if word.endswith("ves"):
        return word[:-3] + "f"
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    return word[:-1]


def _tokens(text: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())
    return [_singular(w) for w in words if w not in _STOPWORDS]


def _same_word(said: str, name: str) -> bool:
    """Equal, or a typo of it ('jaket', 'scarff', 'denin') for words long enough to tell."""
    if said == name:
        return True
    if min(len(said), len(name)) < 4 or abs(len(said) - len(name)) > 2:
        return False
    return difflib.SequenceMatcher(None, said, name).ratio() >= 0.8


def _named(text: str, items: Sequence[LineItem]) -> tuple[list[LineItem], set[str]]:
    """Items whose name shares a word with the text, and the text's words that named them."""
    said = _tokens(text)
    chosen: list[LineItem] = []
    used: set[str] = set()
    for item in items:
        hits = {w for w in said for n in _tokens(item.name) if _same_word(w, n)}
        if hits:
            chosen.append(item)
            used |= hits
    return chosen, used


def _by_position(text: str, items: Sequence[LineItem]) -> tuple[list[LineItem], set[str]]:
    """'the second one', '2nd', 'the last one', a bare '2' (a numbered choice)."""
    words = re.findall(r"[\w']+", text.lower())
    bare = _NUMBER_WORD.match(text)
    if bare and 1 <= int(bare.group(1)) <= len(items):
        return [items[int(bare.group(1)) - 1]], set(words)
    chosen: list[LineItem] = []
    used: set[str] = set()
    for i, word in enumerate(words):
        position = _ORDINALS.get(word) or (len(items) if word in _LAST else None)
        if position is None or position > len(items):
            continue
        after = words[i + 1] if i + 1 < len(words) else ""
        if len(words) <= 4 or after in _PICK or not after:
            chosen.append(items[position - 1])
            used |= {word, after}
    return chosen, used


def match_items(wanted: Sequence[str] | str, items: Sequence[LineItem]) -> list[LineItem]:
    """Line items the visitor means: 'the shoes', 'socks and shoes', 'both', 'all of it',
    'DENIM JACKET', 'the jaket', 'the second one', 'everything except the scarf'."""
    return choose_items(wanted, items)[0]


def choose_items(wanted: Sequence[str] | str,
                 items: Sequence[LineItem]) -> tuple[list[LineItem], bool]:
    """(items meant, whether the text is nothing but that choice).

    The second part tells an answer ("the denim jacket", "both please") from a message that
    merely mentions an item ("does the denim jacket come in other sizes?")."""
    phrases = [wanted] if isinstance(wanted, str) else [str(p) for p in wanted]
    text = " ".join(phrases)
    excluded: list[LineItem] = []
    kept = text
    for found in _EXCEPT.finditer(text):
        named, _ = _named(found.group(1), items)
        if named:
            excluded += named
            kept = kept.replace(found.group(0), " ")
    everything = bool(_ALL.search(kept)) or (
        len(items) == 1 and bool(_ONLY_IT.search(kept)) and not _named(kept, items)[0])
    named, used = _named(kept, items)
    placed, placed_words = _by_position(kept, items)
    if everything or (excluded and not named and not placed):
        chosen = list(items)
    else:
        chosen = [i for i in items if i in named or i in placed]
    chosen = [i for i in chosen if i not in excluded]
    leftover = [w for w in _tokens(kept) if w not in used and w not in placed_words
                and not _ALL.fullmatch(w) and not w.isdigit()]
    return chosen, bool(chosen) and not leftover
