"""Reciprocal rank fusion of the dense and lexical rankings (knowledge/retrieval.py)."""

from __future__ import annotations

from knowledge.retrieval import LEXICAL_WEIGHT, fuse


def test_dense_leads_when_lexical_is_undecided() -> None:
    dense = [(1, 0.61), (2, 0.58), (3, 0.40)]
    lexical = [(2, 7.0), (1, 6.5), (3, 1.0)]  # its best barely ahead: a vote of 0.3
    assert [c for c, _ in fuse(dense, lexical)][:2] == [1, 2]


def test_a_chunk_far_ahead_in_bm25_gets_a_full_vote() -> None:
    # "can I place an order from Hungary": the FAQ on changing orders is closest in meaning,
    # only the shipping zones' list names Hungary (fourth in meaning).
    dense = [(10, 0.47), (30, 0.45), (40, 0.44), (20, 0.41)]
    undecided = [(20, 4.0), (50, 3.5)]
    assert fuse(dense, undecided)[0][0] == 10  # lexical's 0.3 vote is not enough
    distinct = [(20, 9.0), (50, 3.0)]
    assert fuse(dense, distinct)[0][0] == 20
    assert dict(fuse(dense, distinct))[20] > 1 / 6 + LEXICAL_WEIGHT / 10


def test_a_single_lexical_hit_counts_as_distinct() -> None:
    assert fuse([(1, 0.5), (2, 0.45)], [(2, 4.0)])[0][0] == 2


def test_nothing_in_nothing_out() -> None:
    assert fuse([], []) == []
