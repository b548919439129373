"""Routes declared once, with typed models that validate input and produce the OpenAPI document.

Each resource module declares its routes on the one `API`:

    @API.route("GET", "/conversations", roles=EVERYONE, query=ConversationFilter,
               response=Page[ConversationOut], summary="List the shop's conversations")
    async def list_conversations(call: Call[None, ConversationFilter]) -> Page[ConversationOut]:
        ...

`mount` registers every route on the Sanic app behind one wrapper: authenticate (admin_api/
auth.py), check the role, check CSRF for browser sessions, parse the query and the JSON body
into pydantic models (422 with the validation errors otherwise), call the handler, serialise
its model. `openapi` builds the OpenAPI 3.1 document from the same declarations and pydantic's
JSON Schemas (2020-12, which OpenAPI 3.1 uses as is), so the document cannot drift from what
the code validates. Path parameters come from `{name}` in the path; a `params` model validates
them (422) and gives the document their schemas. A route whose form shows the body's 422
may word it itself (`body_errors=`: pydantic's error in, the detail out; PUT
/channels/order_backend names fields as the Channels tab labels them); the others answer
pydantic's errors as `_errors` shows them.

Most routes speak JSON. A route may instead take its body as text of one media type
(`raw_body="application/x-yaml"`: another Content-Type is a 415, the handler gets the text as
`call.body`) and answer text of one (`produces=`, the handler returns a str). A route with
more than one success status (`also=(201,)`) answers `WithStatus(201, value)` for the others.

Text no database keeps is refused here, for every route at once (422, naming where it is):
NUL (`"\\u0000"` in JSON, a raw NUL in a text body) and lone surrogates (`"\\ud800"`: no
character, no UTF-8 for it). PostgreSQL's text refuses NUL and no driver encodes a surrogate
(both a 500), SQLite keeps a NUL that then breaks a YAML draft (every later edit of it a 409),
and a response text holding one is sent to visitors. pydantic refuses lone surrogates in
`str` fields it validates, not NUL, and not in `dict[str, Any]` values: so the parsed JSON is
searched, keys and values, before any model sees it. Nothing is cleaned instead: a person
typed these texts, and a client sending NUL has a bug to see (the gateway, whose senders are
visitors, keeps their text and drops the characters: connectors/bounds.py). A route that words
its body's 422 (`body_errors=`) words these too: they reach it as pydantic errors of type
`string_unstorable` located in the JSON as sent.

Bodies are bounded before they are read: an upload route takes the settings' upload limit,
every other route `BODY_LIMIT` (1 MB), checked from Content-Length (413 at once, the body
unread) and, for a chunked body, as it is read (connectors/bounds.py, installed by app.py).
One limit for every route was the upload's 20 MB, and an unauthenticated POST /session of 20
MB of `[{},{},...]` held the event loop 1.4 s in json.loads and grew the process by 500 MB.
The largest body a person writes is a response's texts: 20 variants of 4096 characters with
10 buttons each (200 + 1000 characters) are 330 KB of ASCII and 960 KB of CJK as UTF-8
(browsers send JSON unescaped); a gap accept is at most 200 examples of 300 characters, a
YAML draft 512 KB (admin_api/training/drafts.py says so itself, under this limit).

A JSON body must say so (Content-Type: application/json, else 415; an empty Content-Type
header was once read as JSON): a cross-site page can POST text/plain or a typeless body with
no preflight (`fetch(..., {mode: "no-cors"})`), never application/json. JSON nested deeper
than the parser's recursion limit is a 400 like any unreadable JSON (a RecursionError was a
500 and a logged traceback).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.json_schema import models_json_schema
from pydantic_core import InitErrorDetails, PydanticCustomError
from sanic import Request, Sanic
from sanic.response import HTTPResponse, empty, raw
from sanic.response import json as json_response

from admin_api.errors import BadRequest, Forbidden, Unprocessable, UnsupportedMediaType
from admin_api.principal import Principal
from core.db import UNSTORABLE

PREFIX = "/api/v1"
BODY_LIMIT = 1024 * 1024  # every route but uploads (see the module's docstring)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PATH_PARAM = re.compile(r"{(\w+)}")
UNSTORABLE_MESSAGE = ("text may not hold NUL characters (U+0000) or unpaired surrogates "
                      "(\\ud800-\\udfff): they cannot be stored")

B = TypeVar("B")
Q = TypeVar("Q")
T = TypeVar("T")


class Model(BaseModel):
    """Base of request and response models: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class Error(BaseModel):
    detail: Any = Field(description="what went wrong: a sentence, or validation errors")


class Page(BaseModel, Generic[T]):
    """One page of a list; every list of the API answers this shape."""

    items: list[T]
    total: int
    page: int
    page_size: int


class PageQuery(Model):
    page: int = Field(1, ge=1, le=100_000)
    page_size: int = Field(50, ge=1, le=200)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@dataclass(frozen=True)
class WithStatus(Generic[T]):
    """A handler's answer with one of its route's other success statuses (`also`)."""

    status: int
    value: T


@dataclass
class Call(Generic[B, Q]):
    """What a handler gets: the request, who is calling, the parsed body, query and path."""

    request: Request
    principal: Principal
    body: B
    query: Q
    path: dict[str, str]

    @property
    def shop(self) -> str:
        return self.principal.shop

    @property
    def ctx(self) -> Any:
        """The app's context (connections, caches): `call.ctx.sessions`, ..."""
        return self.request.app.ctx


Handler = Callable[[Call[Any, Any]], Awaitable[Any]]
# A route's own words for its body's 422 (given pydantic's error; never echo the input).
BodyErrors = Callable[[ValidationError], Any]
# (request) -> Principal or raise Unauthorized; installed by app.py from admin_api/auth.py.
Authenticator = Callable[[Request], Awaitable[Principal]]
# (request, principal) -> raise Forbidden when an unsafe browser request lacks the CSRF token.
CsrfCheck = Callable[[Request, Principal], Awaitable[None]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # under PREFIX, with {params}
    handler: Handler
    roles: frozenset[str]
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None  # a model, list[model], Page[model] or None (204)
    status: int = 200
    upload: bool = False  # multipart/form-data with a `file` field; the handler reads it
    public: bool = False  # no authentication (login, accepting an invitation)
    stream: bool = False  # server-sent events: the handler answers as it goes (request.respond)
    description: str | None = None
    extra_errors: tuple[int, ...] = field(default=())
    path_model: type[BaseModel] | None = None  # validates the path parameters (422)
    raw_body: str | None = None  # the body is text of this media type (call.body: str)
    produces: str = "application/json"  # another: the handler returns the body as a str
    also: tuple[int, ...] = field(default=())  # more success statuses (WithStatus)
    body_errors: BodyErrors | None = None  # the body's 422 detail in the route's words

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)


class Api:
    def __init__(self, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self.endpoints: list[Endpoint] = []
        # The document, built once per set of routes (pydantic's schemas took 0.3 s per app)
        self._documents: dict[tuple[str, str, int], str] = {}

    def route(self, method: str, path: str, *, roles: frozenset[str], summary: str,
              tag: str | None = None, body: type[BaseModel] | None = None,
              query: type[BaseModel] | None = None, response: Any = None, status: int = 200,
              upload: bool = False, public: bool = False, description: str | None = None,
              errors: tuple[int, ...] = (), stream: bool = False,
              params: type[BaseModel] | None = None, raw_body: str | None = None,
              produces: str = "application/json", also: tuple[int, ...] = (),
              body_errors: BodyErrors | None = None) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(Endpoint(
                method=method.upper(), path=path, handler=handler, roles=roles, summary=summary,
                tag=tag or path.strip("/").split("/")[0], body=body, query=query,
                response=response, status=status if response is not None else 204,
                upload=upload, public=public, description=description or handler.__doc__,
                extra_errors=errors, stream=stream, path_model=params, raw_body=raw_body,
                produces=produces, also=also, body_errors=body_errors))
            return handler
        return register

    # --- serving ---------------------------------------------------------------------------

    def mount(self, app: Sanic, authenticate: Authenticator, check_csrf: CsrfCheck,
              upload_limit: int) -> None:
        """Every route on `app`; each names its body limit (`upload_limit` for uploads,
        BODY_LIMIT for the rest), which connectors/bounds.py checks before the body is read."""
        # Every error is JSON (`{"detail"}`); named here, Sanic does not read each handler's
        # source to guess the format (2-3 ms a route at every app's start).
        for endpoint in self.endpoints:
            uri = self.prefix + _PATH_PARAM.sub(r"<\1:str>", endpoint.path)
            app.add_route(_serve(endpoint, authenticate, check_csrf), uri,
                          methods=[endpoint.method], name=endpoint.operation_id,
                          error_format="json",
                          ctx_body_limit=upload_limit if endpoint.upload else BODY_LIMIT)

    # --- the document ----------------------------------------------------------------------

    def openapi(self, *, title: str, version: str) -> dict[str, Any]:
        """The OpenAPI document of the routes declared so far (a copy: the caller's to change)."""
        key = (title, version, len(self.endpoints))
        if key not in self._documents:
            self._documents[key] = json.dumps(self._document(title, version))
        loaded: dict[str, Any] = json.loads(self._documents[key])
        return loaded

    def _document(self, title: str, version: str) -> dict[str, Any]:
        models: list[tuple[Any, Any]] = [(Error, "serialization")]
        for endpoint in self.endpoints:
            if endpoint.body is not None:
                models.append((endpoint.body, "validation"))
            for model in _models_in(endpoint.response):
                models.append((model, "serialization"))
        refs, definitions = models_json_schema(
            models, ref_template="#/components/schemas/{model}")
        schemas = dict(definitions.get("$defs", {}))
        paths: dict[str, dict[str, Any]] = {}
        for endpoint in self.endpoints:
            operation = self._operation(endpoint, refs, schemas)
            paths.setdefault(self.prefix + endpoint.path, {})[endpoint.method.lower()] = operation
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "apiKey": {"type": "http", "scheme": "bearer",
                               "description": "an API key of the shop (`sb_live_…`)"},
                    "session": {"type": "apiKey", "in": "cookie", "name": "sb_session",
                                "description": "a browser session; unsafe methods also need "
                                               "the X-CSRF-Token header"},
                },
            },
        }

    def _operation(self, endpoint: Endpoint, refs: dict[Any, Any],
                   schemas: dict[str, Any]) -> dict[str, Any]:
        def schema_of(model: Any, mode: Literal["validation", "serialization"]
                      ) -> dict[str, Any]:
            if (model, mode) in refs:
                return dict(refs[(model, mode)])
            schema = TypeAdapter(model).json_schema(
                ref_template="#/components/schemas/{model}", mode=mode)
            schemas.update(schema.pop("$defs", {}))
            return schema

        error = {"content": {"application/json": {"schema": schema_of(Error, "serialization")}}}
        operation: dict[str, Any] = {
            "operationId": endpoint.operation_id,
            "summary": endpoint.summary,
            "tags": [endpoint.tag],
            "x-roles": sorted(endpoint.roles),
            "parameters": [
                {"name": name, "in": "path", "required": True,
                 "schema": self._path_schema(endpoint, name, schemas)}
                for name in endpoint.path_params],
            "responses": {},
        }
        if endpoint.description:
            operation["description"] = " ".join(endpoint.description.split())
        if endpoint.query is not None:
            for name, info in endpoint.query.model_fields.items():
                parameter_schema = TypeAdapter(info.annotation).json_schema(
                    ref_template="#/components/schemas/{model}")
                schemas.update(parameter_schema.pop("$defs", {}))
                if info.metadata:
                    parameter_schema.update(_constraints(info.metadata))
                operation["parameters"].append({
                    "name": info.alias or name, "in": "query", "required": info.is_required(),
                    "schema": parameter_schema,
                    **({"description": info.description} if info.description else {})})
        if endpoint.body is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": schema_of(endpoint.body, "validation")}}}
        elif endpoint.raw_body is not None:
            operation["requestBody"] = {"required": True, "content": {
                endpoint.raw_body: {"schema": {"type": "string", "minLength": 1}}}}
        elif endpoint.upload:
            operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {
                "schema": {"type": "object", "required": ["file"], "properties": {
                    "file": {"type": "string", "format": "binary"}}}}}}
        if endpoint.stream:
            operation["responses"]["200"] = {"description": "server-sent events", "content": {
                "text/event-stream": {"schema": {"type": "string"}}}}
        elif endpoint.response is None:
            operation["responses"]["204"] = {"description": "done"}
        else:
            schema = ({"type": "string"} if endpoint.produces != "application/json"
                      else schema_of(endpoint.response, "serialization"))
            for status in (endpoint.status, *endpoint.also):
                operation["responses"][str(status)] = {
                    "description": _REASONS.get(status, "OK"),
                    "content": {endpoint.produces: {"schema": schema}}}
        statuses = {400, 422, *endpoint.extra_errors}
        if not endpoint.public:
            statuses |= {401, 403}
            operation["security"] = [{"apiKey": []}, {"session": []}]
        if endpoint.path_params:
            statuses.add(404)
        if endpoint.upload or endpoint.body is not None or endpoint.raw_body is not None:
            statuses.add(413)
        if endpoint.body is not None or endpoint.raw_body is not None:
            statuses.add(415)
        for status in sorted(statuses):
            operation["responses"][str(status)] = {"description": _REASONS.get(status, "error"),
                                                   **error}
        return operation

    @staticmethod
    def _path_schema(endpoint: Endpoint, name: str, schemas: dict[str, Any]) -> dict[str, Any]:
        info = endpoint.path_model.model_fields.get(name) if endpoint.path_model else None
        if info is None:
            return {"type": "string"}
        schema = TypeAdapter(info.annotation).json_schema(
            ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        if info.metadata:
            schema.update(_constraints(info.metadata))
        if info.description:
            schema["description"] = info.description
        return schema


_REASONS = {200: "OK", 201: "created", 400: "bad request", 401: "not authenticated",
            402: "not in the shop's plan", 403: "not allowed for this role",
            404: "not found in your shop", 409: "conflict", 413: "too large",
            415: "unsupported media type", 422: "invalid input", 429: "too many requests",
            503: "unavailable"}


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    """ge/le/min_length... of a query field as JSON Schema keywords."""
    keywords = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum",
                "lt": "exclusiveMaximum", "min_length": "minLength", "max_length": "maxLength",
                "pattern": "pattern"}
    found: dict[str, Any] = {}
    for item in metadata:
        for attribute, keyword in keywords.items():
            value = getattr(item, attribute, None)
            if value is not None:
                found[keyword] = value
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a response annotation names (Page[X] is itself a model)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [arg for arg in getattr(annotation, "__args__", ())
            if isinstance(arg, type) and issubclass(arg, BaseModel)]


def _serve(endpoint: Endpoint, authenticate: Authenticator,
           check_csrf: CsrfCheck) -> Callable[..., Coroutine[Any, Any, HTTPResponse | None]]:
    adapter = TypeAdapter(endpoint.response) if endpoint.response is not None else None

    async def handle(request: Request, **path: str) -> HTTPResponse | None:
        if endpoint.public:
            principal = Principal(role="public", actor="anonymous", tenant_id=None)
        else:
            principal = await authenticate(request)
            if not principal.may(endpoint.roles):
                raise Forbidden(f"the {principal.role} role may not {endpoint.summary[:1].lower()}"
                                f"{endpoint.summary[1:]}")
            if endpoint.method in UNSAFE and principal.via_session:
                await check_csrf(request, principal)
        if endpoint.path_model is not None:
            _validate(endpoint.path_model, path)
        query = _parse_query(endpoint.query, request) if endpoint.query else None
        body: Any = None
        if endpoint.body:
            body = _parse_body(endpoint.body, request, endpoint.body_errors)
        elif endpoint.raw_body:
            body = _raw_body(endpoint.raw_body, request)
        result = await endpoint.handler(Call(request, principal, body, query, path))
        if endpoint.stream:
            return None  # answered as it went (request.respond); Sanic ends the stream
        if isinstance(result, HTTPResponse):
            return result
        status = endpoint.status
        if isinstance(result, WithStatus):
            if result.status not in (endpoint.status, *endpoint.also):
                raise RuntimeError(f"{endpoint.operation_id} answered an undeclared "
                                   f"{result.status}")
            status, result = result.status, result.value
        if adapter is None:
            return empty(status=204)
        if endpoint.produces != "application/json":
            return raw(str(result).encode("utf-8"), status=status,
                       content_type=f"{endpoint.produces}; charset=utf-8")
        return json_response(adapter.dump_python(result, mode="json"), status=status)

    handle.__name__ = endpoint.operation_id
    return handle


def _parse_query(model: type[BaseModel], request: Request) -> BaseModel:
    raw: dict[str, Any] = {}
    for name, values in request.args.items():
        info = model.model_fields.get(name)
        many = info is not None and "list" in str(info.annotation)
        raw[name] = values if many else values[-1]
    _refuse_unstorable(raw)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise Unprocessable(_errors(exc)) from None


def _validate(model: type[BaseModel], values: dict[str, str]) -> BaseModel:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise Unprocessable(_errors(exc)) from None


# Other names a client may send a raw body's media type under: YAML's registered type (RFC
# 9512, 2024) is application/yaml; application/x-yaml and the text/ forms came before it.
MEDIA_ALIASES = {"application/x-yaml": ("application/yaml", "text/yaml", "text/x-yaml")}


def _media_type(request: Request) -> str:
    """The body's media type as sent, "" without one (Sanic's `content_type` says
    application/octet-stream then)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _raw_body(media_type: str, request: Request) -> str:
    """The body as text, sent as `media_type` or one of its aliases (a charset parameter may
    say utf-8)."""
    content_type = _media_type(request)
    if content_type != media_type and content_type not in MEDIA_ALIASES.get(media_type, ()):
        raise UnsupportedMediaType(
            f"send the body as {media_type} (Content-Type: {media_type}), not "
            f"{content_type[:100] or 'without a Content-Type'}")
    try:
        text = (request.body or b"").decode("utf-8")  # strict: never a lone surrogate
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise Unprocessable(f"the body holds a NUL character (U+0000) on line {line}: "
                            f"{media_type} text may not, and it cannot be stored")
    return text


def _parse_body(model: type[BaseModel], request: Request,
                worded: BodyErrors | None = None) -> BaseModel:
    content_type = _media_type(request)
    if content_type != "application/json":
        raise UnsupportedMediaType(
            f"send a JSON body (Content-Type: application/json), not "
            f"{content_type[:100] or 'without a Content-Type'}")
    try:
        data = json.loads(request.body or b"null")
        found = unstorable_in(data)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    except RecursionError:
        raise BadRequest("the body's JSON is nested too deeply") from None
    if found and worded is not None:  # in the route's words, as its other field errors
        raise Unprocessable(worded(_unstorable_error(model, found)))
    _refuse(found)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Unprocessable(_errors(exc) if worded is None else worded(exc)) from None


def unstorable_in(value: Any, loc: tuple[str | int, ...] = ()
                  ) -> list[tuple[str | int, ...]]:
    """Where `value` (parsed JSON: keys too) holds text no database keeps (UNSTORABLE)."""
    if isinstance(value, str):
        return [loc] if UNSTORABLE.search(value) else []
    found: list[tuple[str | int, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and UNSTORABLE.search(key):
                found.append((*loc, key))
            found += unstorable_in(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += unstorable_in(item, (*loc, index))
    return found


def _refuse_unstorable(value: Any) -> None:
    _refuse(unstorable_in(value))


def _refuse(found: list[tuple[str | int, ...]]) -> None:
    """422 naming each place that holds NUL or a lone surrogate, as pydantic's errors do."""
    if found:
        raise Unprocessable([{"loc": _shown(loc), "msg": UNSTORABLE_MESSAGE,
                              "type": "string_unstorable"} for loc in found[:20]])


def _unstorable_error(model: type[BaseModel], found: list[tuple[str | int, ...]]
                      ) -> ValidationError:
    """The places `unstorable_in` found as a pydantic error of type string_unstorable, for a
    route's `body_errors`. Their locations are the JSON's (a tagged union's tag is no part of
    them, as it is in pydantic's own)."""
    return ValidationError.from_exception_data(model.__name__, [
        InitErrorDetails(type=PydanticCustomError("string_unstorable", UNSTORABLE_MESSAGE),
                         loc=tuple(_shown(loc)), input=None) for loc in found[:20]])


def _shown(loc: tuple[str | int, ...]) -> list[str | int]:
    """A location as JSON can show it: a key's own unstorable characters are escaped."""
    return [UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", part)
            if isinstance(part, str) else part for part in loc]


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors without echoing the input back (it may hold a password), as a person
    reads them: a field typed `X | None` is checked against each member of the union, so a 400
    for a return window reads "return_window_days.constrained-int: Input should be less than or
    equal to 365" and "return_window_days.none: Input should be None". The None member's
    complaint says nothing and the other's member tag is no part of the field's name: both go.
    So does pydantic's "Value error, " before what our own validators say."""
    errors = exc.errors(include_url=False, include_input=False)
    unions = {tuple(e["loc"][:-1]) for e in errors if e["type"] == "none_required" and e["loc"]}
    shown = []
    for error in errors:
        loc = tuple(error["loc"])
        union = next((u for u in unions if loc[:len(u)] == u and len(loc) > len(u)), None)
        if union is not None:
            if error["type"] == "none_required":
                continue
            loc = union + loc[len(union) + 1:]
        shown.append({"loc": list(loc), "msg": error["msg"].removeprefix("Value error, "),
                      "type": error["type"]})
    return shown


API = Api()
