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

Evaluations (issue 15: a trained version tested and compared with the shop's active one or the
base) are the queue's second kind of job: `evaluate` runs bot/evaluate_shop.py in a process of
its own, in the same slots and under the same one-job-a-shop rule as training (it trains two
small NLU models and loads two full ones: as heavy as a training), with the same states,
progress, stage, position and error. They are kept apart from trainings by version
(`evaluations`), and a done one carries `result` instead of `model`. Held-out metrics are
cached under `<dir>/.heldout/` by the data set's fingerprint (bot/evaluate_shop.py).
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
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
    kind: str = "train"  # train | evaluate
    request: dict[str, Any] = field(default_factory=dict, repr=False)  # evaluate: its job
    result: dict[str, Any] | None = None  # evaluate, once done
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
EVALUATOR = (sys.executable, "-m", "bot.evaluate_shop")  # the same protocol, `result` at the end
BASE_MODEL = ROOT / "models" / "switchboard.tar.gz"  # as the Procfile and compose name it
HELDOUT = ".heldout"  # under the shop models' directory: held-out metrics by fingerprint


class TrainingQueue:
    def __init__(self, registry: Registry, slots: int = 1, root: Path = ROOT,
                 trainer: Sequence[str] = TRAINER, evaluator: Sequence[str] = EVALUATOR,
                 base_model: Path = BASE_MODEL) -> None:
        self.registry = registry
        self.slots = slots
        self.root = root
        self.trainer = tuple(trainer)
        self.evaluator = tuple(evaluator)
        self.base_model = base_model
        self.jobs: dict[str, TrainingJob] = {}  # trainings by version
        self.evaluations: dict[str, TrainingJob] = {}  # evaluations by the version tested
        self._line: deque[TrainingJob] = deque()  # jobs waiting for a slot, oldest first
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
        self._check_free(shop)
        job = TrainingJob(shop, version, dict(files))
        self.jobs[version] = job
        model = self.registry.model_file(shop, version)
        if model.is_file():  # trained before the workshop restarted: nothing to do again
            self._finish(job, model, seconds=_recorded_seconds(model))
        else:
            self._line.append(job)
            self._start_next()
        return job, True

    def evaluate(self, shop: str, version: str, files: dict[str, str],
                 against: str | None, against_files: dict[str, str],
                 messages: Sequence[str]) -> tuple[TrainingJob, bool]:
        """Test the shop's trained `version` and compare it with its version `against` (None:
        the base model): (the job, True if new), like `submit`. FileNotFoundError when either
        model file does not exist; Busy as `submit`."""
        check_shop(shop)
        check_version(version)
        if against is not None:
            check_version(against)
        self._forget_old()
        known = self.evaluations.get(version)
        if known is not None:
            if known.shop != shop:
                raise ValueError("that version belongs to another shop")
            return known, False
        model = self.registry.model_file(shop, version)
        other = self.base_model if against is None else self.registry.model_file(shop, against)
        for path in (model, other):
            if not path.is_file():
                raise FileNotFoundError(f"no model {path.name} for shop {shop}")
        self._check_free(shop)
        job = TrainingJob(shop, version, dict(files), kind="evaluate",
                          stage="waiting for a free slot")
        job.request = {
            "files": job.files, "model": str(model),
            "against": {"version": against, "model": str(other), "files": dict(against_files)},
            "messages": list(messages), "heldout": str(self.registry.root / HELDOUT),
            "fingerprints": {"candidate": fingerprint(files, self.root),
                             "against": fingerprint(against_files, self.root)}}
        self.evaluations[version] = job
        self._line.append(job)
        self._start_next()
        return job, True

    def _check_free(self, shop: str) -> None:
        if any(job.shop == shop and job.active
               for job in (*self.jobs.values(), *self.evaluations.values())):
            raise Busy(f"another model of shop {shop} is being trained or tested; one at a "
                       "time per shop")

    def cancel(self, version: str, kind: str = "train") -> TrainingJob | None:
        job = (self.jobs if kind == "train" else self.evaluations).get(version)
        if job is None or not job.active:
            return job
        if job.state == "queued":
            self._line.remove(job)
        elif job.task is not None:
            job.task.cancel()
        self._fail(job, "cancelled")
        return job

    def position(self, job: TrainingJob) -> int | None:
        if job.state == "running":
            return 0
        if job.state == "queued":
            return self._line.index(job) + 1
        return None

    def describe(self, job: TrainingJob) -> dict[str, Any]:
        described = {"version": job.version, "shop": job.shop, "state": job.state,
                     "progress": round(job.progress, 3), "stage": job.stage,
                     "position": self.position(job), "error": job.error}
        if job.kind == "evaluate":
            return {**described, "against": job.request.get("against", {}).get("version"),
                    "result": job.result}
        return {**described, "model": job.model}

    async def close(self) -> None:
        everyone = [*self.jobs.values(), *self.evaluations.values()]
        for job in everyone:
            if job.active:
                self.cancel(job.version, job.kind)
        tasks = [job.task for job in everyone if job.task is not None]
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- running ---

    def _start_next(self) -> None:
        while self._running < self.slots and self._line:
            job = self._line.popleft()
            self._running += 1
            if job.kind == "evaluate":
                job.state, job.stage = "running", "starting the tests"
                job.task = asyncio.create_task(self._run_evaluation(job),
                                               name=f"evaluate-{job.version}")
            else:
                job.state, job.stage = "running", "starting the trainer"
                job.task = asyncio.create_task(self._run(job), name=f"train-{job.version}")
            # The slot is given back when the task ends, however it ends: a task cancelled
            # before it first ran never enters `_in_slot`, whose `finally` would not run.
            job.task.add_done_callback(self._slot_freed)

    def _slot_freed(self, _: asyncio.Task[None]) -> None:
        self._running -= 1
        self._start_next()

    async def _run_evaluation(self, job: TrainingJob) -> None:
        work_dir = self.registry.model_file(job.shop, job.version).parent \
            / f".{job.version}.evaluating"

        async def evaluate() -> None:
            started = time.perf_counter()
            last = await self._child(job, self.evaluator, job.request, work_dir, "result")
            job.result = last["result"]
            job.state, job.progress, job.finished_at = "done", 1.0, time.monotonic()
            job.stage = "tested"
            log.info("shop model tested", extra={
                "shop": job.shop, "version": job.version,
                "seconds": round(time.perf_counter() - started, 1),
                "parts": (job.result or {}).get("seconds_by_part")})

        await self._in_slot(job, work_dir, "testing", evaluate)

    async def _kill(self, job: TrainingJob) -> None:
        if job.process is not None and job.process.returncode is None:
            job.process.kill()
            await job.process.wait()

    async def _run(self, job: TrainingJob) -> None:
        final = self.registry.model_file(job.shop, job.version)
        work_dir = final.parent / f".{job.version}.partial"

        async def train() -> None:
            started = time.perf_counter()
            model = await self._train(job, work_dir)
            seconds = time.perf_counter() - started
            # Beside the model, for a workshop that restarts before the admin asked for it.
            _sidecar(final).write_text(json.dumps({"seconds": round(seconds, 1)}))
            os.replace(model, final)
            self._finish(job, final, seconds=seconds)
            log.info("shop model trained", extra={"shop": job.shop, "version": job.version,
                                                  "seconds": round(seconds, 1),
                                                  "bytes": final.stat().st_size})

        await self._in_slot(job, work_dir, "training", train)

    async def _in_slot(self, job: TrainingJob, work_dir: Path, what: str,
                       work: Callable[[], Awaitable[None]]) -> None:
        """Runs a job's work in its slot: failures in words, the work directory removed
        whatever happens (the slot is freed when the task ends: `_start_next`)."""
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
            await work()
        except asyncio.CancelledError:
            await self._kill(job)
            self._fail(job, "cancelled")
        except _TrainerFailed as exc:
            self._fail(job, str(exc))
        except Exception:
            log.exception("%s %s of shop %s failed unexpectedly", what, job.version, job.shop)
            self._fail(job, f"{what} failed unexpectedly; the error was logged for the operators")
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
            job.process = None

    async def _train(self, job: TrainingJob, work_dir: Path) -> Path:
        last = await self._child(job, self.trainer, {"files": job.files,
                                                     "output": str(work_dir),
                                                     "name": job.version}, work_dir, "model")
        return Path(last["model"])

    async def _child(self, job: TrainingJob, command: Sequence[str], request: dict[str, Any],
                     work_dir: Path, answer: str) -> dict[str, Any]:
        """Runs bot/train_shop.py's protocol: `request` on stdin, progress lines into the job;
        the line that carries `answer` (the model, the result), or _TrainerFailed."""
        # Rasa's training cache off, and its directory in the job's own (the image's working
        # directory is read-only).
        env = {**os.environ, "PYTHONPATH": str(self.root), "RASA_MAX_CACHE_SIZE": "0",
               "RASA_CACHE_DIRECTORY": str(work_dir / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
        process = await asyncio.create_subprocess_exec(
            *command, cwd=str(self.root), env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=16 * 1024 * 1024)  # a result's line is long
        job.process = process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(request).encode())
        await process.stdin.drain()
        process.stdin.close()
        tail: deque[str] = deque(maxlen=STDERR_TAIL)
        reading = asyncio.create_task(_collect(process.stderr, tail))
        found: dict[str, Any] | None = None
        error: str | None = None
        async for raw in process.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(line, dict):
                continue
            if "progress" in line:
                job.progress = float(line["progress"])
                job.stage = str(line.get("stage", job.stage))
            if answer in line:
                found = line
            error = line.get("error", error)
        code = await process.wait()
        await reading
        if code != 0 or found is None:
            log.error("%s of %s (shop %s) ended with code %s; its last words:\n%s",
                      command[-1], job.version, job.shop, code, "".join(tail))
            raise _TrainerFailed(error or f"the {'trainer' if job.kind == 'train' else 'tests'}"
                                          f" stopped (exit code {code})")
        return found

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
        for jobs in (self.jobs, self.evaluations):
            for version, job in list(jobs.items()):
                if job.finished_at is not None and now - job.finished_at > KEEP_FINISHED:
                    del jobs[version]


def _sidecar(model: Path) -> Path:
    return model.with_name(model.name.replace(".tar.gz", ".json"))


def _recorded_seconds(model: Path) -> float | None:
    try:
        return float(json.loads(_sidecar(model).read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _TrainerFailed(Exception):
    pass


async def _collect(stream: asyncio.StreamReader | None, into: deque[str]) -> None:
    if stream is None:
        return
    async for raw in stream:
        into.append(raw.decode("utf-8", "replace"))
