"""Stands in for bot/evaluate_shop.py in tests/bot/test_training.py: its protocol (a job on
stdin, progress lines and `{"result": ...}` on stdout) without Rasa. The result echoes what it
was given, so a test sees what the queue sent. A draft containing BROKEN makes it fail."""

from __future__ import annotations

import json
import sys


def main() -> int:
    job = json.load(sys.stdin)
    print(json.dumps({"progress": 0.3, "stage": "running the test stories"}), flush=True)
    print("Rasa prints this", flush=True)
    if "BROKEN" in "".join(job["files"].values()):
        print("Traceback: the story file is broken", file=sys.stderr, flush=True)
        print(json.dumps({"error": "evaluation failed: the story file is broken"}), flush=True)
        return 1
    print(json.dumps({"result": {"job": job, "seconds": 0.1}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
