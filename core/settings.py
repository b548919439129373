"""Every environment variable our processes read, declared once and read once into a frozen object.

Adding a setting is one declaration (`env_field`): its field, the variable that sets it, the
parser that checks the value, and what the default means in production. `ProcessSettings` is
what any process may read without secrets (where data lives, log level, bind addresses);
Rasa's interpreter (bot/stores.py) and Alembic (migrations/env.py) read it too. `BotSettings`
adds the one secret Rasa's launcher (bot/serve.py) needs; `Settings` adds what the gateway and
the action server need; its two secrets are required.

A missing required value or a malformed one stops the process at start-up with a `ConfigError`
naming the variable; nothing silently becomes "" or falls back to a default. Secrets are
`Secret`s, which mask themselves; the reprs also mask passwords inside URLs (log a URL through
`redact_url`).
tests/test_compose.py checks docker-compose.yml against these declarations (`variables()`).

Standard library only at import time: Rasa's Python 3.10 imports this module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # httpx and httpcore: not at import time (Rasa's Python reads this module)
    from core.destinations import Destinations

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; the message names the variable."""


class Secret:
    """A value that keeps itself out of reprs, logs and f-strings; `reveal()` is the only way in.

    Safer than starlette's `Secret`: `str()` masks too (so `"%s" % key` or `f"{key}"` in a log
    line cannot leak it), and equality compares in constant time.
    """

    __slots__ = ("_value",)
    MASK = "**********"

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{self.MASK}')"

    def __str__(self) -> str:
        return self.MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def async_database_url(url: str) -> str:
    """Map a plain DATABASE_URL to the async driver we use for it."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***` (safe for reprs and logs)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc or parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))


# ---------------------------------------------------------------------------------------------
# Parsers: raw (stripped, non-empty) text -> typed value, or ValueError saying what is expected.

Parser = Callable[[str], Any]


def text(raw: str) -> str:
    return raw


def local_path(raw: str) -> Path:
    """A file or directory on this machine, absolute."""
    return Path(raw).expanduser().resolve()


def existing_file(raw: str) -> Path:
    path = local_path(raw)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return path


def prefixed(*prefixes: str) -> Parser:
    """Comma-separated values (one is usual; several while a key is rotated), each starting
    with one of `prefixes`: a key pasted into the wrong variable fails at start-up."""

    def parse(raw: str) -> str:
        values = [v.strip() for v in raw.split(",")]
        if not all(v.startswith(prefixes) and len(v) > max(map(len, prefixes)) for v in values):
            raise ValueError(f"expected a value starting with {' or '.join(prefixes)}")
        return ",".join(values)

    return parse


def integer(low: int, high: int | None = None) -> Parser:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if value < low or (high is not None and value > high):
            raise ValueError(f"expected {low}-{high}" if high else f"expected at least {low}")
        return value

    return parse


def networks(raw: str) -> tuple[Any, ...]:
    """Comma-separated IP addresses or networks ("10.0.0.5, 172.16.0.0/12, ::1")."""
    found = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is no IP address or network") from None
    return tuple(found)


port = integer(1, 65535)
metrics_port = integer(0, 65535)  # 0: the process serves no metrics


def boolean(raw: str) -> bool:
    """1/true/yes/on or 0/false/no/off, any case."""
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected seconds, e.g. 8 or 2.5") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError("expected seconds greater than 0")
    return value


def one_of(*choices: str) -> Parser:
    """Case-insensitive choice, returned as declared."""
    by_key = {choice.lower(): choice for choice in choices}

    def parse(raw: str) -> str:
        if raw.lower() not in by_key:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return by_key[raw.lower()]

    return parse


def urls(*schemes: str) -> Parser:
    """One URL or several, comma-separated, each as `url` checks it; kept comma-separated."""
    one = url(*schemes)

    def parse(raw: str) -> str:
        return ",".join(one(part.strip()) for part in raw.split(",") if part.strip())

    return parse


def url(*schemes: str) -> Parser:
    """An absolute URL with one of these schemes, without a trailing slash."""

    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"expected a {' or '.join(schemes)} URL with a host")
        _ = parts.port  # raises ValueError for a port out of range or not a number
        return raw.rstrip("/")

    return parse


def redis_address(raw: str) -> str:
    value = url("redis", "rediss")(raw)
    db = urlsplit(value).path.lstrip("/")
    if db and not db.isdigit():
        raise ValueError("expected redis://[:password@]host[:port][/database number]")
    return value


def database_address(raw: str) -> str:
    """A plain or async SQLAlchemy URL of PostgreSQL or SQLite, as the async URL we use."""
    value = async_database_url(raw)
    dialect = value.split("://", 1)[0].split("+", 1)[0] if "://" in value else ""
    if dialect not in ("postgresql", "sqlite"):
        raise ValueError("expected postgresql://user:password@host:port/db or sqlite:///path")
    return value


def bind_host(raw: str) -> str:
    if "://" in raw or any(c.isspace() or c == "/" for c in raw):
        raise ValueError("expected an address to listen on, e.g. 127.0.0.1 or 0.0.0.0")
    return raw


# ---------------------------------------------------------------------------------------------
# Declarations


@dataclass(frozen=True)
class Variable:
    """One environment variable of a settings class, as declared by `env_field`."""

    name: str  # the environment variable
    field: str  # the attribute of the settings class it sets
    doc: str  # what the value is, and what the default means in production
    parse: Parser = dataclasses.field(repr=False, compare=False)
    default: Any = None  # used when the variable is unset or blank
    derive: Callable[[Mapping[str, Any]], Any] | None = dataclasses.field(
        default=None, repr=False, compare=False)  # default computed from the fields before it
    required: bool = False  # no default: unset or blank is a ConfigError
    secret: bool = False  # the value is a Secret and comes from the host, never from a file
    # The default works only with every process on one host (loopback URLs and addresses):
    # a deployment over several hosts or containers must set it.
    local_default: bool = False
    used_by: tuple[str, ...] = ()  # the processes that read it; () = every process of the class


_ENV = "switchboard.env"


def _as_secret(parse: Parser) -> Parser:
    return lambda raw: Secret(parse(raw))


def env_field(
    name: str,
    parse: Parser = text,
    *,
    doc: str,
    default: Any = None,
    derive: Callable[[Mapping[str, Any]], Any] | None = None,
    required: bool = False,
    secret: bool = False,
    local_default: bool = False,
    used_by: tuple[str, ...] = (),
) -> Any:
    """A dataclass field read from environment variable `name` (see `Variable`)."""
    variable = Variable(name=name, field="", doc=doc, parse=_as_secret(parse) if secret else parse,
                        default=default, derive=derive, required=required, secret=secret,
                        local_default=local_default, used_by=used_by)
    metadata = {_ENV: variable}
    if required or derive is not None:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


_S = TypeVar("_S", bound="ProcessSettings")


@dataclass(frozen=True, kw_only=True, repr=False)
class ProcessSettings:
    """What any process of ours may read without secrets: where data lives, log level, bind
    addresses. Also read inside Rasa's interpreter (bot/stores.py) and by Alembic
    (migrations/env.py)."""

    var_dir: Path = env_field(
        "SWITCHBOARD_VAR_DIR", local_path, default=ROOT / "var",
        doc="embedded SQLite files, knowledge indexes and derived models; the default /app/var "
            "exists, writable, in the images, and the knowledge volume is mounted under it")
    database_url: str = env_field(
        "DATABASE_URL", database_address, local_default=True,
        derive=lambda v: f"sqlite+aiosqlite:///{v['var_dir'] / 'switchboard.db'}",
        doc="our tables and Rasa's tracker store; unset: SQLite files under var_dir, which only "
            "processes sharing one disk can use")
    redis_url: str | None = env_field(
        "REDIS_URL", redis_address,
        doc="Rasa's lock store, dedupe, answer cache; unset: in-process, so one process of each "
            "kind (more Rasa workers or replicas need it)")
    log_level: str = env_field(
        "LOG_LEVEL", one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), default="INFO",
        doc="INFO is the production level")
    gateway_host: str = env_field(
        "GATEWAY_HOST", bind_host, default="0.0.0.0", used_by=("gateway",),
        doc="all interfaces: the gateway is the public process")
    gateway_port: int = env_field(
        "GATEWAY_PORT", port, default=8000, used_by=("gateway",),
        doc="the gateway's port; providers and the widget reach it through the published port")
    actions_host: str = env_field(
        "ACTIONS_HOST", bind_host, default="127.0.0.1", local_default=True, used_by=("actions",),
        doc="loopback: only processes on the same host reach the action server")
    actions_port: int = env_field(
        "ACTIONS_PORT", port, default=5055, used_by=("actions",),
        doc="the action server's port (ACTION_ENDPOINT_URL and ACTION_SERVER_URL name it)")
    # Metrics (core/metrics.py): each process serves Prometheus's text format on a port of its
    # own, apart from the public one, so neither the internet nor a provider can read them.
    metrics_host: str = env_field(
        "METRICS_HOST", bind_host, default="127.0.0.1", local_default=True,
        used_by=("gateway", "actions", "bot", "admin"),
        doc="where every process serves /metrics; loopback: only this host scrapes them (in "
            "compose the container's interface, on the internal network, never published)")
    gateway_metrics_port: int = env_field(
        "GATEWAY_METRICS_PORT", metrics_port, default=9101, used_by=("gateway",),
        doc="the gateway's metrics port, never its public one; 0: no metrics endpoint")
    actions_metrics_port: int = env_field(
        "ACTIONS_METRICS_PORT", metrics_port, default=9102, used_by=("actions",),
        doc="the action server's metrics port; 0: no metrics endpoint")
    bot_metrics_port: int = env_field(
        "BOT_METRICS_PORT", metrics_port, default=9103, used_by=("bot",),
        doc="Rasa's metrics port (bot/metrics.py, all its Sanic workers in one endpoint), never "
            "its API port; 0: no metrics endpoint")
    admin_host: str = env_field(
        "ADMIN_HOST", bind_host, default="0.0.0.0", used_by=("admin",),
        doc="all interfaces: people reach the admin API and its pages (put it behind TLS)")
    admin_port: int = env_field(
        "ADMIN_PORT", port, default=8080, used_by=("admin",),
        doc="the admin service's port (API, owner and agent pages, Rasa's NLG endpoint)")
    admin_metrics_port: int = env_field(
        "ADMIN_METRICS_PORT", metrics_port, default=9104, used_by=("admin",),
        doc="the admin service's metrics port, never its public one; 0: no metrics endpoint")
    sandbox_http_port: int = env_field(
        "SANDBOX_HTTP_PORT", port, default=8025, used_by=("sandbox",),
        doc="development only: the provider sandbox's HTTP port under `make run`")
    sandbox_smtp_port: int = env_field(
        "SANDBOX_SMTP_PORT", port, default=2525, used_by=("sandbox",),
        doc="development only: the sandbox's SMTP port (and the demo shop's dev credentials)")
    sanic_workers: int = env_field(
        "SANIC_WORKERS", integer(1), default=1, used_by=("bot",),
        doc="Rasa worker processes; more than 1 needs REDIS_URL (a lock store they share)")
    embed_precision: str = env_field(
        "KNOWLEDGE_EMBED_PRECISION", one_of("auto", "fp32", "bf16"), default="auto",
        doc="auto picks bf16 for documents where the CPU has AMX tiles (PyTorch), fp32 "
            "elsewhere (ONNX Runtime, no PyTorch in the process; faster than PyTorch's bf16 "
            "where AVX512-BF16 is all the CPU has)")

    def __post_init__(self) -> None:
        # Rasa accepts several Sanic workers with any custom lock store; without Redis each would
        # hold its own in-memory locks and interleave one conversation's messages.
        if self.sanic_workers > 1 and not self.redis_url:
            raise ConfigError("SANIC_WORKERS > 1 needs REDIS_URL (a lock store the workers share)")

    @classmethod
    def variables(cls) -> tuple[Variable, ...]:
        """The declarations of this class's fields, in order."""
        return tuple(dataclasses.replace(f.metadata[_ENV], field=f.name)
                     for f in dataclasses.fields(cls) if _ENV in f.metadata)

    @classmethod
    def from_env(cls: type[_S], env: Mapping[str, str] | None = None) -> _S:
        """Read every declared variable from `env` (default: the process environment)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for var in cls.variables():
            raw = env.get(var.name, "").strip()
            if raw:
                try:
                    values[var.field] = var.parse(raw)
                except ValueError as exc:
                    shown = "(hidden)" if var.secret else repr(redact_url(raw))
                    raise ConfigError(f"{var.name}={shown} is not valid: {exc}") from None
            elif var.required:
                raise ConfigError(
                    f"{var.name} is not set ({var.doc}). Set it in the environment; "
                    f"`make run` writes development values to var/dev.env.")
            elif var.derive is not None:
                values[var.field] = var.derive(values)
            else:
                values[var.field] = var.default
        return cls(**values)

    def __repr__(self) -> str:
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                value = redact_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def knowledge_dir(self) -> Path:
        """Per-tenant FAISS and lexical index files."""
        return self.var_dir / "knowledge"

    @property
    def tracker_store_url(self) -> str:
        """Where Rasa keeps its `events` table (bot/stores.py picks the same place)."""
        if self.uses_embedded_storage:
            return f"sqlite+aiosqlite:///{self.var_dir / 'rasa-tracker.db'}"
        return self.database_url

    @property
    def uses_embedded_storage(self) -> bool:
        return self.database_url.startswith("sqlite")


def _derived_key(secret: str, purpose: bytes) -> bytes:
    """32 bytes for one purpose from a secret (HMAC-SHA256 as a KDF: standard library only,
    one secret to manage, and knowing one derived key reveals neither the secret nor another)."""
    return hmac.new(secret.encode(), b"switchboard " + purpose, hashlib.sha256).digest()


@dataclass(frozen=True, kw_only=True, repr=False)
class BotSettings(ProcessSettings):
    """What Rasa's launcher (bot/serve.py) and the workshop (bot/workshop.py) add to the
    process settings: the secret their HTTP APIs check callers with (read from the
    environment, so it is on no command line), and where each listens or calls."""

    rasa_token: Secret = env_field(
        "RASA_TOKEN", secret=True, required=True,
        doc="shared by the gateway and Rasa: the key of the short-lived JWTs (HS256) the gateway "
            "sends in an Authorization header to Rasa's HTTP API; never in a URL or argv")

    nlg_url: str = env_field(
        "NLG_URL", url("http", "https"), default="http://127.0.0.1:8080/nlg", local_default=True,
        used_by=("bot",),
        doc="our NLG endpoint (the admin service) that Rasa asks for every response's text; "
            "unreachable: Rasa says the domain's default texts")
    workshop_host: str = env_field(
        "WORKSHOP_HOST", bind_host, default="127.0.0.1", local_default=True,
        used_by=("workshop",),
        doc="where the workshop (bot/workshop.py: Rasa's own checks of designers' drafts) "
            "listens; loopback: only the admin service on this host calls it")
    workshop_port: int = env_field(
        "WORKSHOP_PORT", port, default=5006, used_by=("workshop",),
        doc="the workshop's port (WORKSHOP_URL names it)")
    shop_models_dir: Path = env_field(
        "SHOP_MODELS_DIR", local_path, used_by=("bot", "workshop"),
        derive=lambda v: v["var_dir"] / "shop-models",
        doc="shops' own trained models and which one each shop uses (bot/shop_models.py): the "
            "workshop writes them, every bot runtime reads them, so they share this directory")
    bot_model_memory_mb: int = env_field(
        "BOT_MODEL_MEMORY_MB", integer(1), default=1024, used_by=("bot",),
        doc="resident memory the bot runtime may spend on shops' own models besides the base "
            "(about 10 MB each, bench/models.py); past it the least recently used are unloaded "
            "and load again on their next turn")
    bot_turn_slots: int = env_field(
        "BOT_TURN_SLOTS", integer(1, 64), default=3, used_by=("bot",),
        doc="turns of the switchboard channel inside Rasa at once per Rasa worker; the others "
            "wait, each shop's in arrival order and the shops taking turns (bot/turn_gate.py): "
            "fewer interleaved turns, a shorter tail of turn times under load")
    workshop_training_slots: int = env_field(
        "WORKSHOP_TRAINING_SLOTS", integer(1, 8), default=1, used_by=("workshop",),
        doc="shop models the workshop trains at once (one per shop at most); 1 on 2 cores: a "
            "training uses both, a second at once only makes each take twice as long")

    @property
    def nlg_token(self) -> Secret:
        """The bearer token Rasa's NLG client (bot/nlg.py) sends to our NLG endpoint, derived
        from RASA_TOKEN: both sides have it without another secret to manage."""
        return Secret(_derived_key(self.rasa_token.reveal(), b"nlg endpoint").hex())

    @property
    def rasa_jwt_key(self) -> Secret:
        """The HS256 key both sides use, derived from RASA_TOKEN: a 64-character key whatever
        the token's length (PyJWT warns below 32 bytes; RFC 7518 asks for at least 32)."""
        return Secret(_derived_key(self.rasa_token.reveal(), b"rasa http api jwt").hex())


@dataclass(frozen=True, kw_only=True, repr=False)
class Settings(BotSettings):
    """Everything the gateway and the action server need; the two secrets are required."""

    credentials_key: Secret = env_field(
        "SWITCHBOARD_CREDENTIALS_KEY", secret=True, required=True,
        doc="Fernet key(s), comma-separated, newest first: tenant credentials at rest and "
            "widget visitor tokens")
    rasa_url: str = env_field(
        "RASA_URL", urls("http", "https"), default="http://127.0.0.1:5005", local_default=True,
        used_by=("gateway", "admin"),
        doc="where the gateway and the admin service find the bot runtime (Rasa); several, "
            "comma-separated, share the shops by consistent hashing (core/runtimes.py); the "
            "default is loopback")
    action_server_url: str = env_field(
        "ACTION_SERVER_URL", url("http", "https"), default="http://127.0.0.1:5055",
        local_default=True, used_by=("gateway",),
        doc="where the gateway's /health finds the action server; the default is loopback")
    rasa_timeout: float = env_field(
        "RASA_TIMEOUT", seconds, default=30.0, used_by=("gateway",),
        doc="the gateway's wait for one Rasa turn; 30 s is the production value")
    anthropic_api_key: Secret | None = env_field(
        "ANTHROPIC_API_KEY", secret=True, used_by=("actions",),
        doc="Claude writes knowledge answers; unset: answers are extractive (the best passage)")
    anthropic_base_url: str | None = env_field(
        "ANTHROPIC_BASE_URL", url("http", "https"), used_by=("actions",),
        doc="unset: Anthropic's API; only tests point the SDK at a local fake")
    llm_timeout: float = env_field(
        "LLM_TIMEOUT", seconds, default=8.0, used_by=("actions",),
        doc="seconds for one Messages API call, retries included; 8 s is the production value")
    public_base_url: str | None = env_field(
        "PUBLIC_BASE_URL", url("http", "https"), used_by=("gateway", "admin"),
        doc="the gateway's public origin when a proxy fronts it (providers sign that URL; the "
            "owner page's widget script tag names it); unset: the request's own URL")
    gateway_url: str = env_field(
        "GATEWAY_URL", url("http", "https"), default="http://127.0.0.1:8000", local_default=True,
        used_by=("admin",),
        doc="where the admin service hands agents' replies to the gateway's outbox "
            "(/internal/agent-replies); the default is loopback")
    workshop_url: str = env_field(
        "WORKSHOP_URL", url("http", "https"), default="http://127.0.0.1:5006",
        local_default=True, used_by=("admin",),
        doc="where the admin service asks the workshop (bot/workshop.py, in Rasa's interpreter) "
            "for Rasa's own checks of a shop's drafts; the default is loopback")
    admin_url: str = env_field(
        "ADMIN_URL", url("http", "https"), default="http://127.0.0.1:8080", local_default=True,
        used_by=("gateway", "actions"),
        doc="where the gateway and the action server post live events for agents when "
            "REDIS_URL is not set (/internal/live); the default is loopback")
    twilio_api_url: str = env_field(
        "TWILIO_API_URL", url("http", "https"), default="https://api.twilio.com",
        used_by=("gateway",), doc="Twilio's API; tests and `make run` point it at stand-ins")
    graph_api_url: str = env_field(
        "GRAPH_API_URL", url("http", "https"), default="https://graph.facebook.com",
        used_by=("gateway",), doc="Meta's Graph API; tests and `make run` point it at stand-ins")
    send_attempts: int = env_field(
        "SEND_ATTEMPTS", integer(1), default=4, used_by=("gateway",),
        doc="tries per outbound message on transient provider failures; 4 is the production value")
    health_token: Secret | None = env_field(
        "HEALTH_TOKEN", secret=True, used_by=("gateway",),
        doc="bearer token for GET /health/details from another host (a monitor); unset: the "
            "details answer only on loopback, and public GET /health says ok or degraded only")
    admin_public_url: str | None = env_field(
        "ADMIN_PUBLIC_URL", url("http", "https"), used_by=("admin",),
        doc="the admin service's public origin, for links in invitation and password reset "
            "emails; unset: invitations use the origin of the request that sent them, resets "
            "ADMIN_URL (a reset is asked for by anyone, who could choose the Host header)")
    smtp_url: str | None = env_field(
        "SMTP_URL", url("smtp", "smtps"), used_by=("admin",),
        doc="the platform's own mail (invitations, notices to shops): smtp[s]://user:pass@host:"
            "port; unset: no mail is sent and the link is only shown to whoever invited")
    mail_from: str = env_field(
        "MAIL_FROM", default="Switchboard <no-reply@switchboard.localhost>", used_by=("admin",),
        doc="the From of the platform's own mail")
    cookie_secure: bool = env_field(
        "COOKIE_SECURE", boolean, default=True, used_by=("admin",),
        doc="admin session cookies only over HTTPS; `make run` turns it off for http://localhost")
    trusted_proxies: tuple[Any, ...] = env_field(
        "TRUSTED_PROXIES", networks, default=(), used_by=("gateway", "admin"),
        doc="the addresses (IPs or networks, comma-separated) of the reverse proxies in front "
            "of the gateway and the admin service: only their X-Forwarded-For names the "
            "client (connectors/proxies.py); unset: the connection's peer is the client. "
            "Behind a proxy, leave it unset and every visitor and every login shares the "
            "proxy's address (rate limits, failed order checks and login limits count them "
            "all as one)")
    allow_private_destinations: bool = env_field(
        "ALLOW_PRIVATE_DESTINATIONS", boolean, default=False,
        used_by=("gateway", "admin", "actions"),
        doc="let shops' owners name private network destinations (this host, local networks, "
            "cloud metadata) for webhooks, the REST reply callback, the WooCommerce or Shopify "
            "URL and the SMTP server (core/destinations.py); false in production, where they "
            "would make our servers call internal services; `make run` and tests set it true "
            "for their local stand-ins")
    upload_max_bytes: int = env_field(
        "UPLOAD_MAX_BYTES", integer(1024), default=20 * 1024 * 1024, used_by=("admin",),
        doc="the largest knowledge file the admin API accepts (bytes)")
    knowledge_warm: bool = env_field(
        "KNOWLEDGE_WARM", boolean, default=True, used_by=("admin",),
        doc="load the embedding model when the admin service starts, so that the first upload's "
            "job does not wait for it; it costs each admin process about 2 s of CPU at start and "
            "250 MB of memory from then on (ONNX Runtime; PyTorch's bf16 copy on CPUs with "
            "AMX: about 8 s and 600 MB). false: loaded by the first upload")
    stripe_api_key: Secret | None = env_field(
        "STRIPE_API_KEY", prefixed("sk_", "rk_"), secret=True,
        used_by=("gateway", "admin", "actions"),
        doc="Stripe's secret key (sk_live_/sk_test_, or a restricted key): billing is on, shops "
            "without a subscription are on the plans file's default plan and its limits; "
            "unset: no billing, no plan limits (a deployment that does not charge)")
    stripe_api_base: str = env_field(
        "STRIPE_API_BASE", url("http", "https"), default="https://api.stripe.com",
        used_by=("gateway", "admin"),
        doc="Stripe's API; tests and `make run` point it at stand-ins (devtools/stripe_sandbox.py)")
    stripe_webhook_secret: Secret | None = env_field(
        "STRIPE_WEBHOOK_SECRET", prefixed("whsec_"), secret=True, used_by=("gateway",),
        doc="the whsec_ signing secret of the webhook endpoint POST /billing/stripe/webhook "
            "(several, comma-separated, while rotating); unset: the endpoint answers 503")
    billing_plans: Path = env_field(
        "BILLING_PLANS", existing_file, default=ROOT / "billing" / "plans.yml",
        used_by=("gateway", "admin", "actions"),
        doc="the pricing: a YAML file of plans, their Stripe Prices and limits "
            "(billing/plans.yml is the format and the development pricing)")
    billing_grace_days: int = env_field(
        "BILLING_GRACE_DAYS", integer(0, 90), default=7, used_by=("gateway", "admin", "actions"),
        doc="days a subscription whose payment failed (past_due) keeps its plan before its "
            "limits tighten to the default plan's")
    log_message_text: bool = env_field(
        "LOG_MESSAGE_TEXT", boolean, default=False,
        doc="debugging only: log visitors' message texts; off in production (texts hold emails, "
            "phone numbers, addresses)")

    @property
    def log_key(self) -> bytes:
        """Key of the pseudonyms that stand for visitors in logs (core/logs.py `visitor`),
        derived from the first credentials key: the gateway and the action server name one
        visitor alike, and no one without the key can test a guessed phone number against a
        log line. Rotating that key starts new pseudonyms."""
        first = self.credentials_key.reveal().split(",")[0].strip()
        return _derived_key(first, b"log pseudonyms")

    @property
    def csrf_key(self) -> bytes:
        """Key of the admin sessions' CSRF tokens (HMAC of the session token, so no column
        holds them), derived from the first credentials key like `log_key`."""
        first = self.credentials_key.reveal().split(",")[0].strip()
        return _derived_key(first, b"admin csrf tokens")

    @property
    def conversation_id_key(self) -> bytes:
        """Key of the admin API's opaque conversation ids (AES-SIV over the sender id: the
        id names a conversation without showing the visitor's phone or email), derived from
        the first credentials key like `log_key`. Rotating that key changes the ids."""
        first = self.credentials_key.reveal().split(",")[0].strip()
        return _derived_key(first, b"conversation ids")

    @property
    def internal_token(self) -> Secret:
        """The bearer token of the routes our processes call each other on (the gateway's
        /internal/agent-replies, the admin service's /internal/live), derived from the first
        credentials key like `log_key`: every process that has the key has the token."""
        first = self.credentials_key.reveal().split(",")[0].strip()
        return Secret(_derived_key(first, b"internal routes").hex())

    @property
    def destinations(self) -> Destinations:
        """Where this process may connect on shops' behalf (core/destinations.py)."""
        from core.destinations import Destinations

        return Destinations(allow_private=self.allow_private_destinations)

    @property
    def widget_secret(self) -> bytes:
        """Key for signed web-visitor tokens, derived from the credentials key (one secret
        fewer to manage; rotating that key also ends old widget sessions)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        first = self.credentials_key.reveal().split(",")[0].strip().encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                    info=b"switchboard widget visitor tokens").derive(first)
