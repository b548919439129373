"""Eight measured speed-ups of Rasa 3.6.21, installed in every Rasa process: seven of its turn
handling, one of its training.

1. Stop re-checking Rasa's own JSON schema on every action-server reply.
   `RemoteAction._validate_action_result` calls `jsonschema.validate`, which first validates
   the *schema itself* (`check_schema`) and builds a new validator, on every custom action
   call. Measured here (bench/turns.py, py-spy): 27-31 ms per action call, about half of
   Rasa's CPU per turn. We validate every response against the same schema with a validator
   built once: the same checks and the same error, without the repeated schema self-check.

2. Check an action response's events by their name. Rasa's schema lists the 23 event shapes
   under `oneOf`, so every event of every response was checked against all of them: 11 % of
   Rasa's event-loop time under 20 concurrent conversations, after (1). Each shape is named by
   a `const` on `event`, so only the named one can match: checking that one alone accepts and
   rejects the same responses (tests/bot/test_speedups.py), in a tenth of the time.

3. Keep connections to the action server. Rasa's `EndpointConfig.request` opens a new aiohttp
   session, so a new TCP connection, for every action call; one kept-alive session per
   endpoint and event loop took 14 % of Rasa's event-loop time down to 9 %.

4. Run a model's graph without dask. Rasa runs every message parse and every action prediction
   through `DaskGraphRunner`, which per run rebuilds the target's minimal schema (a recursive
   walk without memo), builds a dask graph, orders it (dask.order) and schedules it on dask's
   synchronous scheduler, then formats its inputs (the tracker too) into a debug f-string
   that is dropped. Of Rasa's busy time under 20 concurrent conversations 45 % was in dask's
   `run`, 36 % in the graph's own nodes. `SequentialGraphRunner` calls the same nodes with the
   same inputs in one topological order, computed once per (targets, inputs) and kept; dask's
   synchronous scheduler also ran them one after another in this thread.

5. Look event classes up by name in a table. `Event.resolve_by_type`, called for every event
   of every tracker Rasa reads, walks all of `Event`'s subclasses (with `inspect.isabstract`
   on each) to find one name: 4 % of Rasa's busy time. The table is built from the same walk,
   first class wins as there, and built again when a name is missing (a class imported later).

6. Remember whether a domain is empty. Rasa asks on every message parse
   (`_check_for_unseen_features`), and `Domain.is_empty` answers by serialising the whole domain
   and a newly built empty one to compare them: 1.6 % of Rasa's busy time. A loaded model's
   domain does not change; the answer is kept on the domain object.

7. Fingerprint nothing for a training cache that is off. Before a training Rasa runs the whole
   graph once in "fingerprint mode" to find nodes whose output the cache holds, and during
   it `TrainingHook` hashes every node's inputs and output (`deep_container_fingerprint` over
   the training data with every message's features) to store the output there. With the
   cache off (RASA_MAX_CACHE_SIZE=0, as the workshop trains shops' models, bot/train_shop.py)
   nothing is ever found or kept: the trainer now trains every node (as `rasa train --force`
   does) and the hook hashes nothing. The base model's training, forced as bot/train_shop.py
   forces it, with and without the hook's hashing: 23.2 -> 17.5 s of CPU, 20.2 -> 14.5 s
   (cache off, same data, twice each); NLU-only trainings (bot/evaluate_shop.py) also skip
   the fingerprint run. `make train` keeps its cache, and so its fingerprints.

8. Look a rule up by the action it follows. `RulePolicy._get_possible_keys` checks every
   rule (114 in our model, plus 38 for forms' unhappy paths) against the conversation's
   latest state, twice for each of the two or three predictions of a turn: 4.5 % of Rasa's
   event-loop time under 20 concurrent conversations (py-spy --gil). A rule whose last state
   names the action before it (`prev_action.action_name`) can only match a conversation whose
   last action is that one, so the rules are indexed by it once per lookup table (again when
   training changed the table), and only the current action's rules and those that name no
   action are checked, by Rasa's own check on every state as before. Predicting the next
   action after each of the 21 events of an order-status conversation (Rasa's
   `_predict_next_with_tracker`, /tmp script): 0.317 -> 0.227 ms a prediction, the same
   predictions.

Tried and dropped: parsing messages in a worker thread beside the event loop (the MiniLM
encoder releases the GIL). The graph's Python parts then fought the loop for the GIL: Rasa's
CPU per turn went from 13.0 to 16.0 ms and throughput from 74 to 61 turns/s (bench/stock_flow.py
setup, /proc CPU times per process). What does run beside the loop now is only the encoder's C
part, before the turn's processing (bot/featurizer.py `encoded_ahead`).
Measured and left (one core, CPU per message, stop 32): encoding the messages of concurrent
turns together (the 8-bit encoder: 2.4 ms alone, 1.9 a message in twos and fours, 1.6 in
eights; it is not bound by reading its weights) and counting the two CountVectorsFeaturizers'
n-grams with a dict instead of scikit-learn's `transform` (the same matrices; 0.47 -> 0.32 ms).
"""

from __future__ import annotations

import asyncio
import copy
import functools
from dataclasses import dataclass
from typing import Any

import aiohttp
from jsonschema import ValidationError, validators
from jsonschema.exceptions import best_match
from rasa.core import processor
from rasa.core.actions.action import RemoteAction
from rasa.core.policies.rule_policy import SHOULD_NOT_BE_SET, RulePolicy
from rasa.engine.exceptions import GraphRunError
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.engine.training.graph_trainer import GraphTrainer
from rasa.engine.training.hooks import TrainingHook
from rasa.shared.constants import DOCS_BASE_URL
from rasa.shared.core.constants import PREVIOUS_ACTION
from rasa.shared.core.domain import Domain, State
from rasa.shared.core.events import Event
from rasa.shared.nlu.constants import ACTION_NAME
from rasa.shared.utils.common import all_subclasses
from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT, EndpointConfig

# Idle connections are dropped before the action server would close them (Sanic's keep-alive
# is 5 s by default): a request never goes out on a connection the server is closing.
KEEP_ALIVE = 3.0


@dataclass(frozen=True)
class _Validators:
    response: Any  # the response without its events' items
    event: Any  # what every event must be (EVENT_SCHEMA without its oneOf)
    by_type: dict[str, Any]  # event name -> that event's alternative, with the above


@functools.lru_cache(maxsize=1)
def _validators() -> _Validators:
    """Rasa's schema, taken apart where `oneOf` makes it slow: each event alternative is
    picked by its `event` name (a `const` in every one of them), so only the alternative
    named can match, and checking that one alone accepts exactly what `oneOf` accepts."""
    spec = RemoteAction.action_response_format_spec()
    validator_class = validators.validator_for(spec)
    validator_class.check_schema(spec)  # once, as jsonschema.validate would every time
    event_schema = spec["properties"]["events"]["items"]
    base = {key: value for key, value in event_schema.items() if key != "oneOf"}
    by_type = {}
    for alternative in event_schema["oneOf"]:
        name = alternative["properties"]["event"]["const"]
        by_type[name] = validator_class({"allOf": [base, alternative]})
    response = copy.deepcopy(spec)
    response["properties"]["events"] = {"type": "array"}
    return _Validators(validator_class(response), validator_class(base), by_type)


def _first_error(result: Any) -> ValidationError | None:
    checks = _validators()
    error = best_match(checks.response.iter_errors(result))
    if error is not None or not isinstance(result, dict):
        return error
    for index, event in enumerate(result.get("events") or []):
        error = best_match(checks.event.iter_errors(event))
        if error is None:
            named = checks.by_type.get(event["event"])
            if named is None:
                error = ValidationError(f"{event!r} is not valid under any of the given "
                                        f"schemas (no event is named {event['event']!r})")
            else:
                error = best_match(named.iter_errors(event))
        if error is not None:
            error.path.appendleft(index)
            error.path.appendleft("events")
            return error
    return None


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    error = _first_error(result)
    if error is None:
        return True
    error.message += (
        ". Failed to validate Action server response from API, make sure your response "
        f"from the Action endpoint is valid. For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


class _Kept:
    """`async with` hands out a kept session and leaves it open."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def __aenter__(self) -> aiohttp.ClientSession:
        return self._session

    async def __aexit__(self, *_: Any) -> None:
        return None


_sessions: dict[tuple[Any, ...], aiohttp.ClientSession] = {}


def session(self: EndpointConfig) -> _Kept:
    """One kept-alive session per endpoint and event loop, instead of a new session (and TCP
    connection) per call."""
    key = (id(asyncio.get_running_loop()), self.url, tuple(sorted((self.headers or {}).items())),
           tuple(sorted((self.basic_auth or {}).items())))
    kept = _sessions.get(key)
    if kept is None or kept.closed:
        auth = (aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"])
                if self.basic_auth else None)
        kept = aiohttp.ClientSession(
            headers=self.headers, auth=auth,
            timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
            connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=KEEP_ALIVE))
        _sessions[key] = kept
    return _Kept(kept)


class SequentialGraphRunner(DaskGraphRunner):
    """DaskGraphRunner's nodes, inputs and results, run in a kept order without dask (4.)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._orders: dict[tuple[tuple[str, ...], frozenset[str]], list[str]] = {}

    def _order(self, targets: tuple[str, ...], given: frozenset[str]) -> list[str]:
        """The nodes the targets need, each after the nodes it needs; a given input stands
        in for a node of its name (as it replaces that node's task in the dask graph)."""
        key = (targets, given)
        order = self._orders.get(key)
        if order is None:
            order, seen = [], set(given)
            nodes = self._graph_schema.nodes
            # Depth first, children before parents, without recursion.
            stack: list[tuple[str, bool]] = [(target, False) for target in reversed(targets)]
            while stack:
                name, expanded = stack.pop()
                if expanded:
                    order.append(name)
                elif name not in seen and name in nodes:
                    seen.add(name)
                    stack.append((name, True))
                    stack.extend((need, False) for need in reversed(nodes[name].needs.values()))
            self._orders[key] = order
        return order

    def run(self, inputs: dict[str, Any] | None = None,
            targets: list[str] | None = None) -> dict[str, Any]:
        run_targets = targets if targets else self._graph_schema.target_names
        given = inputs or {}
        order = self._order(tuple(run_targets), frozenset(given))
        values: dict[str, Any] = {}
        for name, value in given.items():
            if isinstance(value, str) and value in order:
                raise GraphRunError(
                    f"Input value '{value}' clashes with a node name. Make sure that none of "
                    f"the input names passed to the `run` method are the same as node names "
                    f"in the graph schema.")
            values[name] = (name, value)
        nodes = self._graph_schema.nodes
        try:
            for name in order:
                # A need neither computed nor given is passed as its name, as dask does.
                values[name] = self._instantiated_nodes[name](
                    *(values.get(need, need) for need in nodes[name].needs.values()))
        except RuntimeError as e:
            raise GraphRunError("Error running runner.") from e
        return dict(values[target] for target in run_targets)


_original_resolve_by_type = Event.resolve_by_type
_event_types: dict[str, type[Event]] = {}


def resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
    """Event.resolve_by_type from a table (5.)."""
    found = _event_types.get(type_name)
    if found is None:
        for cls in all_subclasses(Event):
            _event_types.setdefault(cls.type_name, cls)
        found = _event_types.get(type_name)
    if found is None:  # Rasa's own answer: None for "topic", the default, or its error
        return _original_resolve_by_type(type_name, default)
    return found


_original_is_empty = Domain.is_empty


def is_empty(self: Domain) -> bool:
    """Domain.is_empty, asked once per domain object (6.)."""
    known = self.__dict__.get("_switchboard_is_empty")
    if known is None:
        known = self.__dict__["_switchboard_is_empty"] = _original_is_empty(self)
    return bool(known)


_train = GraphTrainer.train
_fingerprint_inputs = TrainingHook.on_before_node
_cache_output = TrainingHook.on_after_node


def _cache_is_off(owner: TrainingHook | GraphTrainer) -> bool:
    is_disabled = getattr(owner._cache, "_is_disabled", None)  # LocalTrainingCache's
    return bool(is_disabled is not None and is_disabled())


def train(self: GraphTrainer, *args: Any, **kwargs: Any) -> Any:
    if _cache_is_off(self):
        kwargs["force_retraining"] = True  # no fingerprint run: nothing is cached to find
    return _train(self, *args, **kwargs)


def on_before_node(self: TrainingHook, *args: Any, **kwargs: Any) -> dict[str, Any]:
    if _cache_is_off(self):
        return {}
    found: dict[str, Any] = _fingerprint_inputs(self, *args, **kwargs)
    return found


def on_after_node(self: TrainingHook, *args: Any, **kwargs: Any) -> None:
    if not _cache_is_off(self):
        _cache_output(self, *args, **kwargs)


_original_get_possible_keys = RulePolicy._get_possible_keys


@dataclass(frozen=True)
class _RuleIndex:
    keys: frozenset[str]  # the lookup table's rules when indexed
    by_action: dict[str, frozenset[str]]  # action name -> the rules whose last state follows it
    unindexed: frozenset[str]  # rules whose last state names no action before it


def _rule_index(policy: RulePolicy, lookup: dict[str, str]) -> _RuleIndex:
    """The index of `lookup`, kept on the policy and built again when its rules changed
    (training adds to the tables)."""
    indexes = policy.__dict__.setdefault("_switchboard_rule_indexes", {})
    index: _RuleIndex | None = indexes.get(id(lookup))
    if index is not None and index.keys == lookup.keys():
        return index
    by_action: dict[str, set[str]] = {}
    unindexed = set()
    for key in lookup:
        states = policy._rule_key_to_state(key)
        name = (states[-1].get(PREVIOUS_ACTION) or {}).get(ACTION_NAME) if states else None
        if name and name != SHOULD_NOT_BE_SET:
            by_action.setdefault(name, set()).add(key)
        else:
            unindexed.add(key)
    index = _RuleIndex(frozenset(lookup), {name: frozenset(keys) for name, keys in
                                           by_action.items()}, frozenset(unindexed))
    indexes[id(lookup)] = index
    return index


def get_possible_keys(self: RulePolicy, lookup: dict[str, str],
                      states: list[State]) -> set[str]:
    """RulePolicy._get_possible_keys, checking only the rules that can follow the latest
    action (8.): a rule whose last state names another action fails Rasa's check at once."""
    if not states:
        return set(lookup)
    index = _rule_index(self, lookup)
    name = (states[-1].get(PREVIOUS_ACTION) or {}).get(ACTION_NAME)
    possible = set(index.unindexed | index.by_action.get(name, frozenset()) if name
                   else index.unindexed)
    for i, state in enumerate(reversed(states)):
        possible = {key for key in possible if self._is_rule_applicable(key, i, state)}
    return possible


def install() -> None:
    RemoteAction._validate_action_result = _validate_action_result
    EndpointConfig.session = session
    processor.DaskGraphRunner = SequentialGraphRunner  # the runner models are loaded with
    Event.resolve_by_type = staticmethod(resolve_by_type)  # a table instead of a walk (5.)
    Domain.is_empty = is_empty
    GraphTrainer.train = train  # no fingerprints for a cache that is off (7.)
    TrainingHook.on_before_node = on_before_node
    TrainingHook.on_after_node = on_after_node
    RulePolicy._get_possible_keys = get_possible_keys  # rules by their last action (8.)
