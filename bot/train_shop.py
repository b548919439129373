"""Trains one shop model: the child process the workshop (bot/training.py) starts per job.

    PYTHONPATH=. .venv-bot/bin/python -m bot.train_shop < job.json

reads `{"files": {"nlu/x.yml": "<yaml>", ...}, "output": "<dir>", "name": "<version>"}` on
stdin, lays the drafts out over the base (bot/project.py), trains with Rasa's own
`rasa.model_training.train` (our config.yml, as `make train` does) and writes one JSON object
per line on stdout for the parent:

    {"progress": 0.42, "stage": "training LinearIntentClassifier (5 of 8)"}
    {"model": "<output>/<version>.tar.gz"}          last line, on success

Anything else (Rasa prints to stdout too) goes to stderr, which the parent keeps for the log.
A failure ends with exit code 1 and `{"error": "<sentence for people>"}` as the last line.

A process per job, not a thread in the workshop: training takes both cores for half a minute,
holds a few hundred MB that are only returned to the system when the process ends, and Rasa's
training is not meant to run twice at once in one interpreter (its graph runner, the global
TensorFlow and warnings state). Rasa's training cache is off (RASA_MAX_CACHE_SIZE=0, set by the
parent): a shop's overlay changes the NLU data, so almost every component trains again anyway,
and the cache would grow by a model's size per job.

Progress counts Rasa's "Starting to train component" log lines (rasa/engine/training/hooks.py
`LoggingHook`): 8 components train with our config.yml (measured: `make train`'s log); the
featurizers' processing of the data between them (MiniLM over every example, most of the
time) is not logged, so the fraction moves in steps.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from bot.project import domain_path, lay_out, training_paths
from bot.rasa_checks import parse_files
from core.settings import ROOT

TRAINED_COMPONENTS = 8  # with config.yml as it is (see the module doc)
STARTING = re.compile(r"Starting to train component '([^']+)'")


_protocol: list[IO[str]] = []  # the real stdout, once main() has moved everything else


def emit(**fields: Any) -> None:
    out = _protocol[0] if _protocol else sys.stdout
    out.write(json.dumps(fields) + "\n")
    out.flush()


def keep_stdout_for_the_protocol() -> None:
    """Rasa prints to stdout too ("Your Rasa model is trained ..."): our lines keep the
    original stdout, and file descriptor 1 and sys.stdout become stderr for everyone else."""
    _protocol.append(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    os.dup2(2, 1)
    sys.stdout = sys.stderr


class Progress(logging.Handler):
    """Turns Rasa's training hook's log lines into progress lines on stdout."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.started = 0

    def emit(self, record: logging.LogRecord) -> None:
        found = STARTING.search(record.getMessage())
        if found:
            self.started += 1
            total = max(TRAINED_COMPONENTS, self.started)
            emit(progress=round(0.1 + 0.8 * (self.started - 1) / total, 3),
                 stage=f"training {found.group(1)} ({self.started} of {total})")


def train(files: dict[str, str], output: Path, name: str) -> Path:
    from rasa.model_training import train as rasa_train

    progress = Progress()
    hooks_log = logging.getLogger("rasa.engine.training.hooks")
    hooks_log.addHandler(progress)
    hooks_log.setLevel(logging.INFO)
    try:
        with tempfile.TemporaryDirectory(prefix="switchboard-train-") as tmp:
            project = Path(tmp).resolve()
            lay_out(project, files, ROOT)
            emit(progress=0.05, stage="reading the training data")
            result = rasa_train(domain=str(domain_path(project)), config=str(ROOT / "config.yml"),
                                training_files=training_paths(project, ROOT),
                                output=str(output), fixed_model_name=name, force_training=True)
    finally:
        hooks_log.removeHandler(progress)
    if result.code != 0 or not result.model:
        raise RuntimeError(f"Rasa's training ended with code {result.code}")
    return Path(result.model)


def main() -> int:
    started = time.perf_counter()
    keep_stdout_for_the_protocol()
    try:
        job = json.load(sys.stdin)
        files = parse_files(job["files"])
        output = Path(job["output"])
        name = str(job["name"])
    except (ValueError, KeyError, TypeError) as exc:
        emit(error=f"the job is not what the trainer takes: {exc}")
        return 1
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        model = train(files, output, name)
    except Exception as exc:  # Rasa raises many kinds; the parent logs our stderr
        logging.getLogger(__name__).exception("training failed")
        emit(error=f"training failed: {str(exc)[:500] or type(exc).__name__}")
        return 1
    emit(progress=1.0, stage=f"trained in {time.perf_counter() - started:.0f} s")
    emit(model=str(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
