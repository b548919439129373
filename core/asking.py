"""Does a message ask something? A question mark, or a question word opening a clause, in more
than a few words: "thanks! and do you ship to Norway?" asks, "thanks a lot" and "stop" do not.

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


def asks_something(text: str, min_words: int = MIN_WORDS) -> bool:
    words = re.findall(r"[\w']+", text)
    if len(words) < min_words:
        return False
    return "?" in text or bool(QUESTION_OPENER.search(text))
