"""Tests a trained shop model and compares it with another (the shop's active version or the
base): the child process the workshop (bot/training.py) starts per evaluation job.

    PYTHONPATH=. .venv-bot/bin/python -m bot.evaluate_shop < job.json

reads
    {"files": {<the candidate's drafts>}, "model": "<candidate .tar.gz>",
     "against": {"version": "<id>" | null, "model": "<.tar.gz>", "files": {<its drafts>}},
     "messages": ["<visitor text>", ...], "heldout": "<cache dir>",
     "fingerprints": {"candidate": "<sha256>", "against": "<sha256>"}}
and answers on stdout as bot/train_shop.py does (progress lines, then `{"result": {...}}`, or
`{"error": ...}` with exit code 1). Three parts, each timed in the result's `seconds_by_part`:

- held out: each data set (base + drafts) split by bot/scoring.py `split`, an NLU-only model
  trained on the rest with our config.yml's pipeline and the held-out examples parsed by it
  (`Agent.parse_message`: the intent after all our components, FallbackClassifier included).
  The entity extractors (CRF, regex, synonyms) are left out of that pipeline: they never
  change an intent. Results are cached by the data set's fingerprint in
  `<heldout>/<fingerprint>-v<METHOD>.json`, so the base's and an active version's are
  computed once.
- tests: the base's conversation tests (data/tests) and the candidate's own test drafts, run
  as `rasa test core --e2e` runs them (rasa/core/test.py: trackers from the stories, each
  user text parsed, each action predicted, none executed: no action server), against both
  models; a story is passed when nothing in it was predicted wrong.
- routing: every visitor message parsed by both models; the ones whose intent differs grouped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.project import conversation_tests, domain_path, lay_out, training_paths
from bot.rasa_checks import parse_files
from bot.scoring import compare_tests, metrics, routing, split, unscored
from bot.train_shop import emit, keep_stdout_for_the_protocol
from core.settings import ROOT

log = logging.getLogger(__name__)

# In the held-out cache's file names: a change of method invalidates them. 2: test stories'
# texts are no longer part of the data set (bot/project.py holds them out of training).
# 3: the result names the intents too small to score (`unscored`).
METHOD = 3
# Never change an intent (see the module doc).
NOT_FOR_INTENTS = frozenset({"CRFEntityExtractor", "bot.entities.CRFEntityExtractor",
                             "RegexEntityExtractor", "EntitySynonymMapper"})


def _nlu_config(into: Path) -> Path:
    import yaml

    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    config["pipeline"] = [c for c in config["pipeline"] if c["name"] not in NOT_FOR_INTENTS]
    config.pop("policies", None)
    path = into / "config-nlu.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def _parse_intents(agent: Any, texts: list[str]) -> list[str | None]:
    found: list[str | None] = []
    for text in texts:
        parsed = await agent.parse_message(text)
        found.append((parsed.get("intent") or {}).get("name"))
    return found


async def held_out(files: Mapping[str, str], fingerprint: str, cache: Path, work: Path,
                   label: str, step: tuple[float, float]) -> dict[str, Any]:
    """The data set's held-out metrics, from the cache or computed (and cached)."""
    cached = cache / f"{fingerprint}-v{METHOD}.json"
    if cached.is_file():
        emit(progress=step[1], stage=f"held-out metrics of the {label}: known already")
        result: dict[str, Any] = json.loads(cached.read_text(encoding="utf-8"))
        return result
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu
    from rasa.shared.importers.importer import TrainingDataImporter
    from rasa.shared.nlu.constants import INTENT, TEXT
    from rasa.shared.nlu.training_data.training_data import TrainingData

    project = work / f"{label}-project"
    lay_out(project, files, ROOT)
    importer = TrainingDataImporter.load_from_dict(
        domain_path=str(domain_path(project)), training_data_paths=training_paths(project, ROOT))
    data = importer.get_nlu_data()
    examples = [m for m in data.intent_examples if m.get(TEXT) and m.get(INTENT)]
    pairs = [(m.get(TEXT), m.get(INTENT)) for m in examples]
    train_pairs, held = split(pairs)
    train_texts = {text for text, _ in train_pairs}
    kept = [m for m in examples if m.get(TEXT) in train_texts]
    subset = TrainingData(training_examples=kept, entity_synonyms=data.entity_synonyms,
                          regex_features=data.regex_features, lookup_tables=data.lookup_tables)
    nlu_file = work / f"{label}-train.yml"
    nlu_file.write_text(subset.nlu_as_yaml(), encoding="utf-8")
    emit(progress=step[0], stage=f"held-out metrics of the {label}: training on "
                                 f"{len(kept)} examples, {len(held)} held out")
    started = time.perf_counter()
    model = train_nlu(config=str(_nlu_config(work)), nlu_data=str(nlu_file),
                      output=str(work), fixed_model_name=f"heldout-{label}")
    if not model:
        raise RuntimeError(f"the held-out model of the {label} did not train")
    trained = time.perf_counter() - started
    emit(progress=round((step[0] + step[1]) / 2, 3),
         stage=f"held-out metrics of the {label}: parsing {len(held)} held-out examples")
    agent = Agent.load(model)
    predicted = await _parse_intents(agent, [text for text, _ in held])
    result = metrics(zip([intent for _, intent in held], predicted, strict=True))
    result["unscored"] = unscored(pairs)
    log.warning("held-out %s: trained in %.1f s, scored in %.1f s", label, trained,
                time.perf_counter() - started - trained)
    cache.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    partial.write_text(json.dumps(result), encoding="utf-8")
    os.replace(partial, cached)
    Path(model).unlink(missing_ok=True)
    return result


async def story_outcomes(agent: Any, files: list[tuple[Path, str]]) -> list[tuple[str, str,
                                                                                    bool]]:
    """(story, file as people name it, passed) for every test story in `files`."""
    from rasa.core.test import _collect_story_predictions, _create_data_generator

    outcomes: list[tuple[str, str, bool]] = []
    for path, name in files:
        try:
            trackers = _create_data_generator(str(path), agent, None, True) \
                .generate_story_trackers()
        except Exception as exc:  # a story that does not fit this model's domain
            log.warning("test stories of %s could not be read against a model: %s", name, exc)
            continue
        evaluation, _, _ = await _collect_story_predictions(trackers, agent, use_e2e=True)
        outcomes.extend((tracker.sender_id, name, True)
                        for tracker in evaluation.successful_stories)
        outcomes.extend((tracker.sender_id, name, not _wrong(tracker))
                        for tracker in evaluation.failed_stories)
    return outcomes


def _wrong(predicted: Any) -> bool:
    """A wrong action or a wrong intent in the story. Entities alone do not fail it: the base
    model itself misses some of the tests' annotations ("my [denim jacket](item)"; 5 of the
    31 base stories), which `rasa test core` without --e2e never sees since it takes the
    stories' intents as given; the forms ask again for what they did not get."""
    from rasa.core.test import WronglyClassifiedUserUtterance, WronglyPredictedAction

    return any(isinstance(event, WronglyPredictedAction)
               or (isinstance(event, WronglyClassifiedUserUtterance)
                   and event.predicted_intent != event.intent.get("name"))
               for event in predicted.events)


async def evaluate(job: Mapping[str, Any], work: Path) -> dict[str, Any]:
    from rasa.core.agent import Agent

    started = time.perf_counter()
    parts: dict[str, float] = {}
    files = parse_files(job["files"])
    against = job["against"]
    against_files = parse_files(against.get("files") or {})
    cache = Path(job["heldout"])
    messages = [str(m) for m in job.get("messages") or []]

    clock = time.perf_counter()
    heldout = {
        "candidate": await held_out(files, job["fingerprints"]["candidate"], cache, work,
                                    "candidate", (0.02, 0.35)),
        "against": await held_out(against_files, job["fingerprints"]["against"], cache, work,
                                  "against", (0.35, 0.6)),
    }
    parts["heldout"] = time.perf_counter() - clock

    clock = time.perf_counter()
    emit(progress=0.6, stage="loading both models")
    candidate_agent = Agent.load(job["model"])
    against_agent = Agent.load(against["model"])
    parts["loading"] = time.perf_counter() - clock

    clock = time.perf_counter()
    project = work / "tests-project"
    lay_out(project, files, ROOT)
    test_files = conversation_tests(project, files, ROOT)
    emit(progress=0.7, stage=f"running {len(test_files)} test files on the new version")
    on_candidate = await story_outcomes(candidate_agent, test_files)
    emit(progress=0.8, stage=f"running {len(test_files)} test files on the one to compare with")
    on_against = await story_outcomes(against_agent, test_files)
    parts["tests"] = time.perf_counter() - clock

    clock = time.perf_counter()
    emit(progress=0.88, stage=f"routing {len(messages)} visitor messages with both models")
    before = await _parse_intents(against_agent, messages)
    after = await _parse_intents(candidate_agent, messages)
    parts["routing"] = time.perf_counter() - clock

    return {"against": against.get("version"), "heldout": heldout,
            "tests": compare_tests(on_candidate, on_against),
            "routing": routing(messages, before, after),
            "seconds": round(time.perf_counter() - started, 1),
            "seconds_by_part": {name: round(value, 1) for name, value in parts.items()}}


def main() -> int:
    keep_stdout_for_the_protocol()
    try:
        job = json.load(sys.stdin)
        for key in ("files", "model", "against", "heldout", "fingerprints"):
            job[key]  # noqa: B018 - present, or the job is refused below
    except (ValueError, KeyError, TypeError) as exc:
        emit(error=f"the job is not what the evaluator takes: {exc}")
        return 1
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from rasa.utils.log_utils import configure_structlog

    # Unconfigured, Rasa's structlog writes a debug line per prediction: 1,200 lines for the
    # base's tests alone, all to our stderr.
    configure_structlog(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(prefix="switchboard-evaluate-") as tmp:
            result = asyncio.run(evaluate(job, Path(tmp).resolve()))
    except Exception as exc:  # Rasa raises many kinds; the parent logs our stderr
        log.exception("evaluation failed")
        emit(error=f"evaluation failed: {str(exc)[:500] or type(exc).__name__}")
        return 1
    emit(progress=1.0, stage=f"tested in {result['seconds']:.0f} s")
    emit(result=result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
