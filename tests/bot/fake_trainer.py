"""Stands in for bot/train_shop.py in tests/bot/test_training.py: speaks its protocol (a job
on stdin, progress lines and the model's path on stdout) without Rasa.

The job's drafts steer it: a draft containing FAIL makes it fail as Rasa's training would, one
containing SLOW makes it wait (so a test can see it queued, running, cancelled)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> int:
    job = json.load(sys.stdin)
    text = "".join(job["files"].values())
    print(json.dumps({"progress": 0.05, "stage": "reading the training data"}), flush=True)
    print("Rasa says something on stdout too", flush=True)
    print("some warning", file=sys.stderr, flush=True)
    time.sleep(3.0 if "SLOW" in text else 0.05)
    if "FAIL" in text:
        print("Traceback: the intent has no examples", file=sys.stderr, flush=True)
        print(json.dumps({"error": "training failed: the intent has no examples"}), flush=True)
        return 1
    print(json.dumps({"progress": 0.5, "stage": "training LinearIntentClassifier (1 of 2)"}),
          flush=True)
    model = Path(job["output"]) / f"{job['name']}.tar.gz"
    model.write_bytes(b"model of " + text.encode())
    print(json.dumps({"model": str(model)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
