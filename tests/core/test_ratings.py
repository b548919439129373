"""A visitor's answer to the satisfaction question (core/handoffs.py rating_in): a 1-5 rating
as people write it, and no rating read into anything else."""

from __future__ import annotations

import pytest

from core.handoffs import rating_in


@pytest.mark.parametrize(
    ("text", "rating"),
    [("4", 4), (" 5 ", 5), ("4/5", 4), ("5 stars", 5), ("5 stars, thanks so much!", 5),
     ("5, thanks so much!", 5), ("5 thanks", 5), ("4 - quick and helpful", 4), ("3.", 3),
     ("five!", 5), ("one", 1), ("I'd give it a 4", 4), ("a solid 4", 4), ("4 out of 5", 4),
     ("5/5 would recommend", 5), ("rating: 4", 4), ("I rate it five stars", 5),
     ("5 star service", 5), ("thanks, 5", 5), ("4 :)", 4), ("\u2b50\u2b50\u2b50\u2b50", 4)],
)
def test_ratings_in_words(text: str, rating: int) -> None:
    assert rating_in(text) == rating


@pytest.mark.parametrize(
    "text",
    ["where is order 1001", "1001", "#5", "order 5", "2 items are missing", "3 days late",
     "I ordered 3", "give me 2 minutes", "one more thing", "two of the items are broken",
     "5 stars, 2 days late", "5 stars, but where is my refund?", "10/10", "4.5 stars", "0",
     "6 stars", "call me at 555 1234", "it's fine", ""],
)
def test_no_rating_read_into_other_numbers(text: str) -> None:
    assert rating_in(text) is None
