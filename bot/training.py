"""The workshop's training queue: shops' model versions trained one process each
(bot/train_shop.py), at most `slots` at once and at most one per shop, in the order asked.

The admin service owns the versions' records and their durable job (admin_api's `model.train`
job): it submits a version here and polls it. This queue is memory only. A workshop that
restarts forgets its jobs, answers 404 for them, and the admin's job submits the version
again; a finished model is a file (bot/shop_models.py), so nothing trained is lost.

A job's states: queued (waiting for a slot; `position` k = k-th in line), running (its process
reports progress), done (the model is at `<dir>/<shop>/<version>.tar.gz`), failed (`error`
says why in words for people; the trainer's stderr tail goes to the log). Cancelling kills a
running process. Finished jobs are kept for KEEP_FINISHED seconds so a poll after the end
still sees how it ended.

The model is written beside its final name and renamed into place when complete, so a runtime
never loads half a file. Its `fingerprint` is the SHA-256 of what it was trained from: our
config.yml, the base's domain and data files and the shop's drafts (names and contents), so
two versions trained from the same inputs say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.shop_models import Registry, check_shop, check_version
from core.settings import ROOT

log = logging.getLogger(__name__)

KEEP_FINISHED = 3600.0
STDERR_TAIL = 40  # lines of a failed trainer's stderr that reach the log


class Busy(Exception):
    """Another version of the shop is queued or training."""


@dataclass
class TrainingJob:
    shop: str
    version: str
    files: dict[str, str]
    state: str = "queued"  # queued | running | done | failed
    progress: float = 0.0
    stage: str = "waiting for a free training slot"
    error: str | None = None
    model: dict[str, Any] | None = None
    finished_at: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


def fingerprint(files: Mapping[str, str], root: Path = ROOT) -> str:
    """SHA-256 over config.yml, the base's domain and data files and the drafts."""
    digest = hashlib.sha256()
    base = [root / "config.yml", *sorted((root / "bot" / "domain").glob("*.yml")),
            *sorted((root / "data").rglob("*.yml"))]
    for path in base:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for name in sorted(files):
        digest.update(f"draft/{name}".encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()


TRAINER = (sys.executable, "-m", "bot.train_shop")  # bot/train_shop.py's protocol


class TrainingQueue:
    def __init__(self, registry: Registry, slots: int = 1, root: Path = ROOT,
                 trainer: Sequence[str] = TRAINER) -> None:
        self.registry = registry
        self.slots = slots
        self.root = root
        self.trainer = tuple(trainer)
        self.jobs: dict[str, TrainingJob] = {}
        self._line: deque[str] = deque()  # versions waiting for a slot, oldest first
        self._running = 0

    # --- what the routes call ---

    def submit(self, shop: str, version: str, files: dict[str, str]) -> tuple[TrainingJob, bool]:
        """(the job, True if it is new). The same version again is the same job (a
        resubmit after a lost answer); another version of a shop with an active job is Busy."""
        check_shop(shop)
        check_version(version)
        self._forget_old()
        known = self.jobs.get(version)
        if known is not None:
            if known.shop != shop:
                raise ValueError("that version belongs to another shop")
            return known, False
        if any(job.shop == shop and job.active for job in self.jobs.values()):
            raise Busy(f"another model of shop {shop} is being trained; one at a time per shop")
        job = TrainingJob(shop, version, dict(files))
        self.jobs[version] = job
        model = self.registry.model_file(shop, version)
        if model.is_file():  # trained before the workshop restarted: nothing to do again
            self._finish(job, model, seconds=None)
        else:
            self._line.append(version)
            self._start_next()
        return job, True

    def cancel(self, version: str) -> TrainingJob | None:
        job = self.jobs.get(version)
        if job is None or not job.active:
            return job
        if job.state == "queued":
            self._line.remove(version)
        elif job.task is not None:
            job.task.cancel()
        self._fail(job, "cancelled")
        return job

    def position(self, job: TrainingJob) -> int | None:
        if job.state == "running":
            return 0
        if job.state == "queued":
            return self._line.index(job.version) + 1
        return None

    def describe(self, job: TrainingJob) -> dict[str, Any]:
        return {"version": job.version, "shop": job.shop, "state": job.state,
                "progress": round(job.progress, 3), "stage": job.stage,
                "position": self.position(job), "error": job.error, "model": job.model}

    async def close(self) -> None:
        for job in list(self.jobs.values()):
            if job.active:
                self.cancel(job.version)
        tasks = [job.task for job in self.jobs.values() if job.task is not None]
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- running ---

    def _start_next(self) -> None:
        while self._running < self.slots and self._line:
            job = self.jobs[self._line.popleft()]
            self._running += 1
            job.state, job.stage = "running", "starting the trainer"
            job.task = asyncio.create_task(self._run(job), name=f"train-{job.version}")

    async def _run(self, job: TrainingJob) -> None:
        started = time.perf_counter()
        final = self.registry.model_file(job.shop, job.version)
        work_dir = final.parent / f".{job.version}.partial"
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
            model = await self._train(job, work_dir)
            os.replace(model, final)
            seconds = time.perf_counter() - started
            self._finish(job, final, seconds=seconds)
            log.info("shop model trained", extra={"shop": job.shop, "version": job.version,
                                                  "seconds": round(seconds, 1),
                                                  "bytes": final.stat().st_size})
        except asyncio.CancelledError:
            if job.process is not None and job.process.returncode is None:
                job.process.kill()
                await job.process.wait()
            self._fail(job, "cancelled")
        except _TrainerFailed as exc:
            self._fail(job, str(exc))
        except Exception:
            log.exception("training %s of shop %s failed unexpectedly", job.version, job.shop)
            self._fail(job, "training failed unexpectedly; the error was logged for the operators")
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
            job.process = None
            self._running -= 1
            self._start_next()

    async def _train(self, job: TrainingJob, work_dir: Path) -> Path:
        # Rasa's training cache off, and its directory in the job's own (the image's working
        # directory is read-only).
        env = {**os.environ, "PYTHONPATH": str(self.root), "RASA_MAX_CACHE_SIZE": "0",
               "RASA_CACHE_DIRECTORY": str(work_dir / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
        process = await asyncio.create_subprocess_exec(
            *self.trainer, cwd=str(self.root), env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=1024 * 1024)
        job.process = process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps({"files": job.files, "output": str(work_dir),
                                        "name": job.version}).encode())
        await process.stdin.drain()
        process.stdin.close()
        tail: deque[str] = deque(maxlen=STDERR_TAIL)
        reading = asyncio.create_task(_collect(process.stderr, tail))
        model: str | None = None
        error: str | None = None
        async for raw in process.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if "progress" in line:
                job.progress = float(line["progress"])
                job.stage = str(line.get("stage", job.stage))
            model = line.get("model", model)
            error = line.get("error", error)
        code = await process.wait()
        await reading
        if code != 0 or model is None:
            log.error("trainer of %s (shop %s) ended with code %s; its last words:\n%s",
                      job.version, job.shop, code, "".join(tail))
            raise _TrainerFailed(error or f"the trainer stopped (exit code {code})")
        return Path(model)

    def _finish(self, job: TrainingJob, model: Path, seconds: float | None) -> None:
        job.state, job.progress, job.finished_at = "done", 1.0, time.monotonic()
        job.stage = "trained"
        job.model = {"file": self.registry.relative(model),
                     "fingerprint": fingerprint(job.files, self.root),
                     "size": model.stat().st_size,
                     "seconds": None if seconds is None else round(seconds, 1)}

    def _fail(self, job: TrainingJob, error: str) -> None:
        if not job.active:
            return
        job.state, job.error, job.finished_at = "failed", error, time.monotonic()
        job.stage = "failed"

    def _forget_old(self) -> None:
        now = time.monotonic()
        for version, job in list(self.jobs.items()):
            if job.finished_at is not None and now - job.finished_at > KEEP_FINISHED:
                del self.jobs[version]


class _TrainerFailed(Exception):
    pass


async def _collect(stream: asyncio.StreamReader | None, into: deque[str]) -> None:
    if stream is None:
        return
    async for raw in stream:
        into.append(raw.decode("utf-8", "replace"))
