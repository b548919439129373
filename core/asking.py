"""Does a message ask something? A question mark, or a question word opening a clause, in more
than a few words: "thanks! and do you ship to Norway?" asks, "thanks a lot" and "stop" do not.
A message that puts things off for later ("thanks, will look later") does not ask either: its
"will" opens a statement (`defers`).

Read by Rasa's interpreter (bot/questions.py: a question is never small talk) and by the
action server (actions/smalltalk.py: a "stop" that asks about cancelling, while nothing runs,
is answered), so it needs the standard library only.
"""

from __future__ import annotations

import re

MIN_WORDS = 4  # "can you stop?" (3) is a request; "can i cancel my order?" (5) asks

# "have" and "has" are left out ("bye, have a nice day"), and a word followed by an apostrophe
# is not an opener ("thanks, can't wait").
QUESTION_OPENER = re.compile(
    r"(?:^|[,.;:!]\s*|\b(?:and|but|so|also|btw)\s+)"
    r"(?:what|whats|what's|where|wheres|where's|when|why|how|hows|how's|which|who|"
    r"can|could|do|does|did|is|are|will|would|should)\b(?!')", re.I)


# The visitor leaves what they were doing for now and means to come back to it: "ok thanks
# I'll check later", "will look later", "let me find it and come back", "get back to you".
# A form that waits for their answer ends as at a goodbye (actions/answers.py `reason_in`,
# data/nlu/smalltalk.yml teaches these as goodbyes).
# "will it be back later" asks (a subject follows "will"); "can you get back to me" is no
# deferral (someone else is to come back), nor "I'll send it back" (a return).
DEFERRAL = re.compile(
    r"\b(?:i'?ll|i will|i'?m going to|i'?m gonna|gonna|let me|i need to|i have to|i'?d better"
    r"|will(?!\s+(?:it|you|u|they|there|this|that|these|those|the|my|your|he|she|we)\b))"
    r"\b[^.?!]{0,60}?\b(?:later|tomorrow|tonight|another time|in a (?:bit|while)"
    r"|(?:come|get|be|check|write|message|reply|pop) (?:\w+ )?back)\b",
    re.I)


def defers(text: str) -> bool:
    """Puts things off for later, without asking anything ("I'll check later, thanks")."""
    return "?" not in text and bool(DEFERRAL.search(text))


def asks_something(text: str, min_words: int = MIN_WORDS) -> bool:
    words = re.findall(r"[\w']+", text)
    if len(words) < min_words or defers(text):
        return False
    return "?" in text or bool(QUESTION_OPENER.search(text))
