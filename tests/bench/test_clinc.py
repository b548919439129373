"""bench/clinc.py's own logic: the data handed to Rasa and the scoring (no training here)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from bench.clinc import FALLBACK, OOS, Example, load, nlu_yaml, score

SPLITS = {
    "train": [["what's my balance", "balance"], ["how much money do i have", "balance"],
              ["book a table for two", "accept_reservations"]],
    "oos_train": [["how tall is everest", OOS]],
    "val": [["balance please", "balance"], ["do you take reservations", "accept_reservations"],
            ["money left?", "balance"]],
    "oos_val": [["who won the game", OOS], ["sing me a song", OOS]],
}


def write(tmp_path: Path) -> Path:
    path = tmp_path / "clinc.json"
    path.write_text(json.dumps(SPLITS))
    return path


def test_training_takes_train_and_oos_train_and_evaluation_takes_val_and_oos_val(
        tmp_path: Path) -> None:
    training, evaluation = load(write(tmp_path))
    assert [e.intent for e in training] == ["balance", "balance", "accept_reservations", OOS]
    assert [e.intent for e in evaluation] == ["balance", "accept_reservations", "balance",
                                              OOS, OOS]
    few, everything = load(write(tmp_path), limit=1)
    assert [e.text for e in few] == ["what's my balance", "book a table for two",
                                     "how tall is everest"]
    assert everything == evaluation  # the limit never shrinks what is scored


def test_the_training_data_is_rasas_format_with_every_example_once(tmp_path: Path) -> None:
    training, _ = load(write(tmp_path))
    data = yaml.safe_load(nlu_yaml([*training, Example("a  text\twith  gaps", "balance")]))
    assert data["version"] == "3.1"
    blocks = {block["intent"]: block["examples"] for block in data["nlu"]}
    assert blocks["balance"] == ("- what's my balance\n- how much money do i have\n"
                                 "- a text with gaps\n")
    assert set(blocks) == {"balance", "accept_reservations", OOS}


def test_fallback_is_wrong_in_scope_and_right_out_of_scope(tmp_path: Path) -> None:
    _, evaluation = load(write(tmp_path))
    scores = score(evaluation, ["balance", FALLBACK, "accept_reservations", FALLBACK, "balance"])
    assert (scores.in_scope, scores.in_scope_correct, scores.in_scope_fallback) == (3, 1, 1)
    assert (scores.oos, scores.oos_caught) == (2, 1)
    assert scores.confusions == {("accept_reservations", FALLBACK): 1,
                                 ("balance", "accept_reservations"): 1, (OOS, "balance"): 1}
