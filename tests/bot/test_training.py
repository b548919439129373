"""The workshop's training queue (bot/training.py): jobs in order, one per shop, a global
limit, progress, failures in words, cancelling, and models that appear whole.

The trainer is tests/bot/fake_trainer.py (bot/train_shop.py's protocol without Rasa); the real
trainer runs in tests/bot/test_workshop_training.py and the stack's test of issue 15."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bot.shop_models import Registry
from bot.training import Busy, TrainingQueue, fingerprint

pytestmark = pytest.mark.asyncio

FAKE = (sys.executable, str(Path(__file__).with_name("fake_trainer.py")))
FAKE_EVALUATOR = (sys.executable, str(Path(__file__).with_name("fake_evaluator.py")))
V1, V2, V3 = ("a" * 32, "b" * 32, "c" * 32)
NLU = {"nlu/bikes.yml": "nlu: []\n"}


def queue(tmp_path: Path, slots: int = 1) -> TrainingQueue:
    base = tmp_path / "base.tar.gz"
    base.write_bytes(b"the base model")
    return TrainingQueue(Registry(tmp_path / "shop-models"), slots=slots, trainer=FAKE,
                         evaluator=FAKE_EVALUATOR, base_model=base)


async def until(q: TrainingQueue, version: str, *states: str, timeout: float = 20.0,
                kind: str = "train") -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = q.describe((q.jobs if kind == "train" else q.evaluations)[version])
        if described["state"] in states:
            return described
        assert asyncio.get_running_loop().time() < deadline, described
        await asyncio.sleep(0.02)


async def test_a_job_trains_and_its_model_is_where_runtimes_look(tmp_path: Path) -> None:
    q = queue(tmp_path)
    job, new = q.submit("shop-a", V1, NLU)
    assert new and q.describe(job)["state"] == "running" and q.describe(job)["position"] == 0
    done = await until(q, V1, "done", "failed")
    assert done["state"] == "done", done
    assert done["progress"] == 1.0 and done["error"] is None
    model = done["model"]
    assert model["file"] == f"shop-a/{V1}.tar.gz"
    path = q.registry.model_file("shop-a", V1)
    assert path.read_bytes().startswith(b"model of") and model["size"] == path.stat().st_size
    assert model["seconds"] >= 0 and model["fingerprint"] == fingerprint(NLU)
    assert not list(path.parent.glob(".*partial*")), "the work directory is cleaned up"
    # the same inputs give the same fingerprint; other drafts another one
    assert fingerprint(NLU) != fingerprint({"nlu/bikes.yml": "nlu: [] \n"})


async def test_one_job_per_shop_a_global_limit_and_a_line(tmp_path: Path) -> None:
    q = queue(tmp_path, slots=1)
    slow = {"nlu/bikes.yml": "# SLOW\nnlu: []\n"}
    q.submit("shop-a", V1, slow)
    with pytest.raises(Busy):
        q.submit("shop-a", V2, NLU)  # the same shop waits for its running job
    second, _ = q.submit("shop-b", V2, NLU)
    third, _ = q.submit("shop-c", V3, NLU)
    assert (q.describe(second)["state"], q.describe(second)["position"]) == ("queued", 1)
    assert q.describe(third)["position"] == 2 and "waiting" in q.describe(third)["stage"]
    # the same version again is the same job (an admin retrying after a lost answer)
    again, new = q.submit("shop-b", V2, NLU)
    assert again is second and not new
    await until(q, V1, "done")
    assert q.describe(second)["state"] in ("running", "done")
    await until(q, V3, "done")
    assert q.describe(second)["state"] == "done"


async def test_a_failed_training_says_why_and_frees_the_shop(tmp_path: Path) -> None:
    q = queue(tmp_path)
    q.submit("shop-a", V1, {"nlu/bikes.yml": "# FAIL\n"})
    failed = await until(q, V1, "failed", "done")
    assert failed["state"] == "failed"
    assert failed["error"] == "training failed: the intent has no examples"
    assert failed["model"] is None and not q.registry.model_file("shop-a", V1).exists()
    job, _ = q.submit("shop-a", V2, NLU)  # the shop may train again
    assert (await until(q, V2, "done"))["state"] == "done"


async def test_cancelling_stops_a_running_and_a_queued_job(tmp_path: Path) -> None:
    q = queue(tmp_path)
    slow = {"nlu/bikes.yml": "# SLOW\nnlu: []\n"}
    q.submit("shop-a", V1, slow)
    q.submit("shop-b", V2, slow)
    await asyncio.sleep(0.3)
    q.cancel(V2)
    q.cancel(V1)
    assert q.describe(q.jobs[V1])["error"] == "cancelled"
    assert q.describe(q.jobs[V2])["state"] == "failed"
    await asyncio.sleep(0.2)
    assert not q.registry.model_file("shop-a", V1).exists()
    await q.close()


async def test_a_job_cancelled_before_it_ran_frees_its_slot(tmp_path: Path) -> None:
    """Cancelled in the same moment it got the slot (its task not yet started): the slot
    came back never, and the workshop trained nothing more until it restarted."""
    q = queue(tmp_path)
    q.submit("shop-a", V1, NLU)
    q.cancel(V1)
    assert q.describe(q.jobs[V1])["error"] == "cancelled"
    q.submit("shop-b", V2, NLU)
    assert (await until(q, V2, "done", "failed"))["state"] == "done"
    await q.close()


async def test_a_model_trained_before_a_restart_is_not_trained_again(tmp_path: Path) -> None:
    q = queue(tmp_path)
    q.submit("shop-a", V1, NLU)
    trained = (await until(q, V1, "done"))["model"]
    restarted = queue(tmp_path)
    job, new = restarted.submit("shop-a", V1, NLU)
    assert new and restarted.describe(job)["state"] == "done"
    assert restarted.describe(job)["model"] == trained  # the training time was kept beside it
    # without that record the model still counts, its training time unknown
    q.registry.model_file("shop-a", V1).with_name(f"{V1}.json").unlink()
    again = queue(tmp_path)
    job, _ = again.submit("shop-a", V1, NLU)
    assert again.describe(job)["model"]["seconds"] is None


async def test_ids_are_checked(tmp_path: Path) -> None:
    q = queue(tmp_path)
    with pytest.raises(ValueError):
        q.submit("../etc", V1, NLU)
    with pytest.raises(ValueError):
        q.submit("shop-a", "not-a-version", NLU)


async def test_an_evaluation_runs_in_the_same_queue_and_rules(tmp_path: Path) -> None:
    q = queue(tmp_path, slots=1)
    with pytest.raises(FileNotFoundError):  # nothing to test before it is trained
        q.evaluate("shop-a", V1, NLU, None, {}, [])
    q.submit("shop-a", V1, NLU)
    await until(q, V1, "done")
    slow = {"nlu/bikes.yml": "# SLOW\nnlu: []\n"}
    q.submit("shop-b", V2, slow)  # another shop's training holds the one slot
    job, new = q.evaluate("shop-a", V1, NLU, None, {}, ["where is my order?"])
    assert new and q.describe(job)["state"] == "queued" and q.describe(job)["position"] == 1
    with pytest.raises(Busy):  # one job a shop, trainings and evaluations alike
        q.submit("shop-a", V3, NLU)
    again, new = q.evaluate("shop-a", V1, NLU, None, {}, [])
    assert again is job and not new
    done = await until(q, V1, "done", "failed", kind="evaluate", timeout=30)
    assert done["state"] == "done" and done["against"] is None and done["progress"] == 1.0
    sent = done["result"]["job"]
    assert sent["model"] == str(q.registry.model_file("shop-a", V1))
    assert sent["against"] == {"version": None, "model": str(tmp_path / "base.tar.gz"),
                               "files": {}}
    assert sent["messages"] == ["where is my order?"]
    assert sent["fingerprints"] == {"candidate": fingerprint(NLU), "against": fingerprint({})}
    assert sent["heldout"] == str(q.registry.root / ".heldout")
    assert not list(q.registry.model_file("shop-a", V1).parent.glob(".*evaluating"))
    # against another of the shop's versions: its model and drafts
    q.submit("shop-a", V3, {"nlu/x.yml": "nlu: []\n"})
    await until(q, V3, "done")
    job, _ = q.evaluate("shop-a", V3, {"nlu/x.yml": "nlu: []\n"}, V1, NLU, [])
    done = await until(q, V3, "done", "failed", kind="evaluate")
    assert done["against"] == V1
    assert done["result"]["job"]["against"]["model"] == str(q.registry.model_file("shop-a", V1))
    assert done["result"]["job"]["fingerprints"]["against"] == fingerprint(NLU)


async def test_a_failed_evaluation_says_why_and_frees_the_shop(tmp_path: Path) -> None:
    q = queue(tmp_path)
    broken = {"tests/bikes.yml": "# BROKEN\n"}
    q.submit("shop-a", V1, broken)
    await until(q, V1, "done")
    q.evaluate("shop-a", V1, broken, None, {}, [])
    failed = await until(q, V1, "failed", "done", kind="evaluate")
    assert failed["error"] == "evaluation failed: the story file is broken"
    assert failed["result"] is None
    q.submit("shop-a", V2, NLU)  # the shop is free again
    await until(q, V2, "done")
    assert q.cancel(V2, "evaluate") is None  # nothing to cancel
