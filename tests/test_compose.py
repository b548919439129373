"""docker-compose.yml and docker/*.Dockerfile, checked against what the code declares.

No Docker engine runs here: the compose file is parsed as YAML and compared with
- core/settings.py: a service sets every variable its settings class (SERVICE_SETTINGS) requires
  or whose default works on one host only, nothing the class does not declare for its process
  (a typo fails), values that parse, and secrets from the host;
- endpoints.yml, the Procfile and the Makefile (the bot's command, variables and model), and
  itself: ports, URLs, networks, healthchecks, start order;
- the Dockerfiles: pinned lock files, every product package in the app image and no development
  tools, and in the bot image only the part of core/ that bot/stores.py imports;
- docker/prometheus.yml: every process's metrics port is scraped over the internal network and
  published to no one.
"""

from __future__ import annotations

import functools
import itertools
import posixpath
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from core.settings import BotSettings, ProcessSettings, Settings, Variable

ROOT = Path(__file__).resolve().parent.parent

# The settings each service's process builds: migrations/env.py under `alembic upgrade head`
# reads ProcessSettings; Rasa's launcher (bot/serve.py) BotSettings (bot/stores.py inside Rasa
# the ProcessSettings part) and the workshop (bot/workshop.py) BotSettings; the action server,
# the gateway and the admin service Settings.
SERVICE_SETTINGS: dict[str, type[ProcessSettings]] = {
    "migrate": ProcessSettings, "bot": BotSettings, "actions": Settings, "gateway": Settings,
    "admin": Settings, "workshop": BotSettings,
}
# The bot runs `python -m bot.serve <rasa arguments>`: Rasa's CLI in process, its secret from
# the environment (bot/serve.py).
BOT_LAUNCHER = ["-m", "bot.serve"]
APP_SERVICES = tuple(SERVICE_SETTINGS)
EXPECTED_SERVICES = {"postgres", "redis", "prometheus", *APP_SERVICES}
# Published services and their host ports: the gateway for visitors and providers, the admin
# service for the people who run shops (DESIGN.md, Processes).
PUBLIC_PORTS = {"gateway": 8000, "admin": 8080}
LISTEN = {"actions": ("ACTIONS_HOST", "ACTIONS_PORT"), "gateway": ("GATEWAY_HOST", "GATEWAY_PORT"),
          "admin": ("ADMIN_HOST", "ADMIN_PORT"), "workshop": ("WORKSHOP_HOST", "WORKSHOP_PORT")}
# Each process's metrics (core/metrics.py): its port variable; METRICS_HOST is the address.
METRICS = {"actions": "ACTIONS_METRICS_PORT", "gateway": "GATEWAY_METRICS_PORT",
           "bot": "BOT_METRICS_PORT", "admin": "ADMIN_METRICS_PORT"}
PROMETHEUS_CONFIG = "docker/prometheus.yml"

# The app image holds the product at the repository layout under /app, and nothing else.
APP_IMAGE_PATHS = ("alembic.ini", "migrations", "core", "tenants", "actions", "knowledge",
                   "connectors", "admin_api", "billing",
                   "bot/domain",  # the responses' default texts (tenants/texts.py reads YAML)
                   "data")  # the base training data drafts build on (admin_api/training/)
NOT_IN_APP_IMAGE = ("devtools", "tests", "bench", "bot")  # bot/'s code runs in Rasa's image
# bot/ imports only core.settings, core.logs, core.sqlite, core.metrics and core.rasa_http
# (tests/test_layering.py), importable by Python 3.10 with Rasa's libraries
# (tests/core/test_settings.py, tests/core/test_logs.py, tests/bot/test_stores.py,
# tests/bot/test_metrics.py, tests/bot/test_workshop.py); the rest of core/ needs our 3.11
# environment.
BOT_IMAGE_PATHS = ("config.yml", "endpoints.yml", "credentials.yml", "bot", "data",
                   "core/__init__.py", "core/settings.py", "core/logs.py", "core/sqlite.py",
                   "core/metrics.py", "core/rasa_http.py")

SERVICE_URLS = {  # variable -> (service it points at, path it must have or None)
    "RASA_URL": ("bot", None),
    "ACTION_SERVER_URL": ("actions", None),
    "ACTION_ENDPOINT_URL": ("actions", "/webhook"),
    "NLG_URL": ("admin", "/nlg"),
    "WORKSHOP_URL": ("workshop", None),
}
HEALTH = {"bot": ("/", "Hello from Rasa"), "actions": ("/health", None),
          "gateway": ("/health", None), "admin": ("/health", None),
          "workshop": ("/health", None)}
BASE_IMAGES = {  # DESIGN.md, Processes: Rasa needs Python 3.10, our code runs on 3.11
    "docker/bot.Dockerfile": "python:3.10-slim",
    "docker/app.Dockerfile": "python:3.11-slim",
}
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
REQUIRED_REF = re.compile(r"^\$\{(?P<var>[A-Za-z_][A-Za-z0-9_]*):\?(?P<msg>[^}]+)\}$")
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)")  # names never baked into an image
RASA_ALIASES = {"-i": "--interface", "-p": "--port", "-m": "--model"}

# ---------------------------------------------------------------------------------------------
# Reading the files


@functools.lru_cache(maxsize=1)
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def service(name: str) -> dict[str, Any]:
    services = compose().get("services") or {}
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def environment(name: str) -> dict[str, str]:
    raw = service(name).get("environment") or {}
    assert isinstance(raw, dict), f"service {name!r}: write environment as a mapping"
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def interpolate(value: str) -> str:
    """`${VAR...}` resolved as a test can: defaults kept, host values become `HOST-<VAR>`."""
    return re.sub(r"\$\{(\w+)(?:(:?[-?+])([^}]*))?\}", lambda m: (m.group(3) or "")
                  if m.group(2) in (":-", "-") else f"HOST-{m.group(1)}", value)


def command(name: str) -> list[str]:
    cmd = service(name).get("command")
    assert cmd, f"service {name!r}: no command (the images have no default command)"
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def procfile(name: str) -> list[str]:
    """The Procfile's command for `name`, without its leading `VAR=value` assignments."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = {key.strip(): value for key, _, value in
               (line.partition(":") for line in lines if not line.startswith("#"))}
    assert name in entries, f"Procfile has no {name!r} line"
    return list(itertools.dropwhile(lambda t: re.match(r"^\w+=", t), shlex.split(entries[name])))


def makefile_rasa_args(subcommand: str) -> list[str]:
    """Arguments after `$(RASA) <subcommand>` in the Makefile's model target."""
    words = subcommand.split()
    for line in (ROOT / "Makefile").read_text().replace("\\\n", " ").splitlines():
        tokens = shlex.split(line.strip()) if line.strip().startswith("$(RASA)") else []
        if tokens[1:1 + len(words)] == words:
            return tokens[1 + len(words):]
    raise AssertionError(f"Makefile: no `$(RASA) {subcommand}` line")


def rasa_options(args: list[str]) -> tuple[list[str], dict[str, str | None]]:
    """`run --enable-api -p 5005` -> (["run"], {"--enable-api": None, "--port": "5005"})."""
    positional = list(itertools.takewhile(lambda a: not a.startswith("-"), args))
    rest = [*args[len(positional):], "-"]
    return positional, {RASA_ALIASES.get(a, a): None if rest[i + 1].startswith("-") else rest[i + 1]
                        for i, a in enumerate(rest[:-1]) if a.startswith("-")}


def rasa_run_args(cmd: list[str], where: str) -> list[str]:
    """The Rasa arguments of a `python -m bot.serve run ...` command."""
    assert Path(cmd[0]).name.startswith("python") and cmd[1:3] == BOT_LAUNCHER, (
        f"{where}: run Rasa as `python -m bot.serve run ...` (the secret stays off the command "
        f"line), not {cmd[:3]}")
    return cmd[3:]


def url_password(url: str) -> str | None:
    """The password of `scheme://user:password@host...`, read before any parsing: a
    `${VAR:?message}` in it may hold `?` or `/`, which urlparse takes for query or path."""
    match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:@/]*:(\$\{[^}]*\}|[^@]*)@", url)
    return match.group(1) if match else None


def port_of(url: str) -> int:
    parsed = urlparse(interpolate(url))
    defaults = {"http": 80, "https": 443, "redis": 6379, "postgres": 5432, "postgresql": 5432}
    assert parsed.port or parsed.scheme in defaults, f"{url!r}: no port and no known scheme"
    return parsed.port or defaults[parsed.scheme]


def declared(name: str) -> dict[str, Variable]:
    """The variables of the service's settings class that its process reads, by name."""
    return {var.name: var for var in SERVICE_SETTINGS[name].variables()
            if not var.used_by or name in var.used_by}


def endpoint_variables() -> set[str]:
    """`${VAR}`s of endpoints.yml: Rasa expands them at start-up, with no default."""
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", (ROOT / "endpoints.yml").read_text()))


def dockerfile_of(name: str) -> str:
    build = service(name).get("build") or {}
    assert build.get("context") == ".", f"service {name!r}: build: {{context: ., dockerfile: ...}}"
    assert (ROOT / build["dockerfile"]).is_file(), f"service {name!r}: no {build['dockerfile']}"
    return str(build["dockerfile"])


def instructions(rel: str, word: str) -> list[str]:
    """Arguments of each `word` instruction (continuation lines joined, comments dropped)."""
    lines = [line for line in (ROOT / rel).read_text().splitlines()
             if not line.lstrip().startswith("#")]
    logical = "\n".join(lines).replace("\\\n", " ").splitlines()
    return [line.split(None, 1)[1] for line in logical
            if line.strip() and line.split(None, 1)[0].upper() == word]


def image_env(rel: str) -> dict[str, str]:
    tokens = (t for rest in instructions(rel, "ENV") for t in shlex.split(rest) if "=" in t)
    return {key: value for key, _, value in (token.partition("=") for token in tokens)}


def image_paths(rel: str) -> dict[str, str]:
    """Repository path -> absolute path in the image, for every COPY from the build context."""
    mapping = {}
    workdir = instructions(rel, "WORKDIR")[-1]
    for rest in instructions(rel, "COPY") + instructions(rel, "ADD"):
        tokens = shlex.split(rest)
        if any(t.startswith("--from") for t in tokens):
            continue
        *sources, dest = [t for t in tokens if not t.startswith("--")]
        into_folder = dest.endswith("/") or dest == "." or len(sources) > 1
        for src in (s.rstrip("/") for s in sources):
            # A file copied into a folder keeps its name; a folder's contents go to dest.
            file_in_folder = into_folder and not (ROOT / src).is_dir()
            target = f"{dest}/{Path(src).name}" if file_in_folder else dest
            mapping[src] = posixpath.normpath(posixpath.join(workdir, target))
    return mapping


def run_commands(rel: str) -> list[list[str]]:
    """Each `&&`/`;`-separated command of every RUN, tokenized."""
    commands: list[list[str]] = [[]]
    for rest in instructions(rel, "RUN"):
        lexer = shlex.shlex(rest, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        for token in itertools.chain(lexer, [";"]):
            if token in ("&&", ";", "||", "|"):
                commands.append([])
            else:
                commands[-1].append(token)
    return [c for c in commands if c]


# ---------------------------------------------------------------------------------------------
# (a) services and commands


def test_compose_has_the_expected_services() -> None:
    services = set(compose().get("services") or {})
    assert services == EXPECTED_SERVICES, (
        f"docker-compose.yml services {sorted(services)}, expected {sorted(EXPECTED_SERVICES)}")


def test_bot_command_has_the_procfile_flags() -> None:
    proc = rasa_run_args(procfile("bot"), "Procfile")
    cmd = rasa_run_args(command("bot"), "service 'bot'")
    (proc_pos, proc_opts), (cmd_pos, cmd_opts) = rasa_options(proc), rasa_options(cmd)
    assert cmd_pos == proc_pos == ["run"], (
        f"service 'bot': rasa subcommand {cmd_pos}, Procfile has {proc_pos}")
    assert set(cmd_opts) == set(proc_opts), (
        f"service 'bot': flags differ from the Procfile's: missing "
        f"{sorted(set(proc_opts) - set(cmd_opts))}, extra {sorted(set(cmd_opts) - set(proc_opts))}")
    for flag, expected in proc_opts.items():
        got = cmd_opts[flag]
        if flag == "--interface":
            assert got == "0.0.0.0", f"service 'bot': {flag} must be 0.0.0.0 (other containers)"
        elif flag == "--port":
            assert str(got).isdigit(), f"service 'bot': --port {got!r} is not a port"
        else:
            assert got == expected, f"service 'bot': {flag} is {got!r}, the Procfile's {expected!r}"


def test_no_secret_on_a_command_line() -> None:
    """`ps` shows every process's argv to every user of the host: Rasa's key comes from
    RASA_TOKEN in its environment (bot/serve.py), never from a flag."""
    secret_vars = {var.name for var in Settings.variables() if var.secret} | {"POSTGRES_PASSWORD"}
    lines = {path: (ROOT / path).read_text()
             for path in ("Procfile", "Makefile", "tests/integration/stack.py")}
    lines |= {f"service {name!r}": " ".join(command(name)) for name in APP_SERVICES}
    for where, text in lines.items():
        for flag in ("--auth-token", "--jwt-secret", "--jwt-private-key"):
            assert flag not in text, f"{where}: {flag} puts a secret on the command line"
        for var in secret_vars:
            assert not re.search(rf"\$\{{?{var}\b", text), (
                f"{where}: ${var} on a command line")


@pytest.mark.parametrize("name", ["actions", "gateway", "admin", "workshop"])
def test_app_service_runs_the_procfile_module(name: str) -> None:
    cmd, proc = command(name), procfile(name)
    assert Path(cmd[0]).name.startswith("python"), f"service {name!r}: runs {cmd[0]!r}, not python"
    assert cmd[1:] == proc[1:], f"service {name!r}: runs {cmd[1:]}, the Procfile runs {proc[1:]}"


def test_migrate_runs_alembic_in_the_app_image() -> None:
    assert command("migrate") == ["alembic", "upgrade", "head"], (
        "service 'migrate': must run `alembic upgrade head` (our schema only; the demo shop "
        "belongs to the development tools)")
    assert str(service("migrate").get("restart")) == "no", "service 'migrate': restart: \"no\""
    builds = {(dockerfile_of(name), service(name).get("image"))
              for name in ("actions", "gateway", "admin", "migrate")}
    assert len(builds) == 1, f"actions, gateway, admin, migrate: build one app image: {builds}"
    # alembic reads alembic.ini from its working directory; the ini names %(here)s/migrations.
    rel = dockerfile_of("migrate")
    assert image_paths(rel).get("alembic.ini") == "/app/alembic.ini", f"{rel}: COPY alembic.ini ./"
    assert "script_location = %(here)s/migrations" in (ROOT / "alembic.ini").read_text(), (
        "alembic.ini: script_location must be %(here)s/migrations (the image copies it beside)")


def test_production_compose_seeds_no_demo_shop() -> None:
    """The demo shop and its known orders (order numbers, emails, a dev REST key) exist only
    where a developer asks for them: `make run` runs devtools.bootstrap. No service here runs
    it or anything like it, and the app image could not (it holds no devtools/)."""
    for name in compose().get("services") or {}:
        words = " ".join(str(part) for part in (service(name).get("command") or []))
        words += " " + str(service(name).get("entrypoint") or "")
        words += " " + " ".join(f"{k}={v}" for k, v in environment(name).items())
        for sign in ("devtools", "bootstrap", "seed", "demo"):
            assert sign not in words.lower(), f"service {name!r}: {sign!r}: no demo shop here"
    assert "devtools" not in image_paths(dockerfile_of("gateway"))
    assert "python -m devtools.bootstrap" in (ROOT / "Makefile").read_text()


# (b) environment, against core/settings.py ----------------------------------------------------


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_sets_what_its_settings_need(name: str) -> None:
    cls = SERVICE_SETTINGS[name].__name__
    needed = {var.name: f"{cls} requires it: {var.doc}" for var in declared(name).values()
              if var.required}
    needed |= {var.name: f"its default works on one host only: {var.doc}"
               for var in declared(name).values() if var.local_default}
    if name == "bot":
        needed |= {var: "endpoints.yml uses it, with no default" for var in endpoint_variables()}
    missing = sorted(set(needed) - set(environment(name)))
    assert not missing, "\n".join(f"service {name!r}: set {var} ({needed[var]})" for var in missing)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_sets_only_what_its_process_reads(name: str) -> None:
    env = environment(name)
    for var, value in env.items():
        assert value.strip(), f"service {name!r}: {var} is empty; remove it or give it a value"
        rasa_own = name == "bot" and (var in endpoint_variables() or var.startswith("RASA_"))
        assert var in declared(name) or rasa_own, (
            f"service {name!r}: sets {var}, which core/settings.py does not declare for "
            f"{SERVICE_SETTINGS[name].__name__} read by {name}: a typo, or a variable that "
            f"belongs to another service")
    # Values parse as the process parses them (SANIC_WORKERS > 1 needs REDIS_URL, ...); a
    # ConfigError names the variable.
    SERVICE_SETTINGS[name].from_env({var: interpolate(value) for var, value in env.items()})


@pytest.mark.parametrize("name", APP_SERVICES)
def test_secrets_come_from_the_host(name: str) -> None:
    env = environment(name)
    for var in (v for v in declared(name).values() if v.secret and v.name in env):
        ref = REQUIRED_REF.match(env[var.name])
        if var.required:
            assert ref and ref.group("var") == var.name, (
                f"service {name!r}: {var.name} must be ${{{var.name}:?message}} (required, from "
                f"the host), is {env[var.name]!r}")
        else:
            assert env[var.name] == f"${{{var.name}:-}}", (
                f"service {name!r}: {var.name} must be ${{{var.name}:-}} (optional, from the host)")
    for variable, value in env.items():
        password = url_password(value)
        assert password is None or REQUIRED_REF.match(password), (
            f"service {name!r}: the password in {variable} must be ${{VAR:?message}} from the host")


def test_database_password_is_the_postgres_password() -> None:
    pg = REQUIRED_REF.match(environment("postgres").get("POSTGRES_PASSWORD", ""))
    assert pg, "service 'postgres': POSTGRES_PASSWORD must be ${POSTGRES_PASSWORD:?message}"
    for name in APP_SERVICES:
        ref = REQUIRED_REF.match(url_password(environment(name)["DATABASE_URL"]) or "")
        assert ref and ref.group("var") == pg.group("var"), (
            f"service {name!r}: DATABASE_URL password must be ${{{pg.group('var')}:?...}}")


# (c) ports, URLs and networks -----------------------------------------------------------------


def listening_port(name: str) -> int:
    if name == "bot":
        return int(str(rasa_options(rasa_run_args(command("bot"), "bot"))[1]["--port"]))
    value = environment(name).get(LISTEN[name][1])
    assert value, f"service {name!r}: set {LISTEN[name][1]} (other services' URLs name the port)"
    return int(value)


@pytest.mark.parametrize("name", sorted(LISTEN))
def test_app_services_listen_on_all_interfaces(name: str) -> None:
    host = environment(name).get(LISTEN[name][0])
    assert host == "0.0.0.0", f"service {name!r}: set {LISTEN[name][0]}: 0.0.0.0 (other containers)"


def test_only_the_gateway_and_the_admin_service_publish_a_port() -> None:
    for public, host_port in PUBLIC_PORTS.items():
        published = [str(entry).split("/")[0] for entry in service(public).get("ports") or []]
        expected = f"{host_port}:{listening_port(public)}"
        assert published == [expected], f"service {public!r}: publish {expected}, not {published}"
    for name in EXPECTED_SERVICES - set(PUBLIC_PORTS):
        assert not service(name).get("ports"), (
            f"service {name!r}: only {sorted(PUBLIC_PORTS)} publish a port")


@pytest.mark.parametrize("name", ["bot", "workshop", "postgres", "redis", "prometheus"])
def test_backend_services_are_on_internal_networks_only(name: str) -> None:
    internal = {n for n, spec in (compose().get("networks") or {}).items()
                if isinstance(spec, dict) and spec.get("internal")}
    outside = set(service(name).get("networks") or {"default"}) - internal
    assert not outside, f"service {name!r}: on non-internal networks {sorted(outside)}"


def scrape_targets() -> set[str]:
    config = yaml.safe_load((ROOT / PROMETHEUS_CONFIG).read_text())
    return {target for job in config.get("scrape_configs") or []
            for static in job.get("static_configs") or [] for target in static.get("targets", [])}


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metrics_are_scraped_over_the_backend_and_not_published(name: str) -> None:
    env = environment(name)
    assert env.get("METRICS_HOST") == "0.0.0.0", (
        f"service {name!r}: METRICS_HOST: 0.0.0.0 (Prometheus scrapes from another container)")
    port = env.get(METRICS[name])
    assert port and port.isdigit() and int(port) > 0, f"service {name!r}: set {METRICS[name]}"
    assert int(port) != listening_port(name), (
        f"service {name!r}: metrics on a port of their own, not the one the service answers on")
    assert port in [str(p) for p in service(name).get("expose") or []], (
        f"service {name!r}: expose {port} (the backend network), never `ports`")
    published = {str(p).split(":")[-1].split("/")[0] for p in service(name).get("ports") or []}
    assert port not in published, f"service {name!r}: the metrics port {port} is published"
    assert f"{name}:{port}" in scrape_targets(), (
        f"{PROMETHEUS_CONFIG}: scrape {name}:{port}")
    assert "backend" in (service(name).get("networks") or []), f"{name}: on the backend network"


def test_prometheus_is_the_official_image_pinned_and_reads_our_config() -> None:
    prometheus = service("prometheus")
    image, _, tag = str(prometheus.get("image")).partition(":")
    assert image == "prom/prometheus", f"service 'prometheus': the official image, not {image}"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"service 'prometheus': pin a version, not {tag!r}"
    mounts = [str(v).split(":") for v in prometheus.get("volumes") or []]
    assert [f"./{PROMETHEUS_CONFIG}", "/etc/prometheus/prometheus.yml", "ro"] in mounts, (
        f"service 'prometheus': mount ./{PROMETHEUS_CONFIG} read-only as its configuration")
    assert "--config.file=/etc/prometheus/prometheus.yml" in command("prometheus")
    targets = {t.split(":")[0] for t in scrape_targets()} - {"localhost"}
    assert targets == set(METRICS), f"{PROMETHEUS_CONFIG}: scrapes {targets}, not {set(METRICS)}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_urls_point_at_the_listening_ports(name: str) -> None:
    env = environment(name)
    for var, (target, path) in SERVICE_URLS.items():
        if var in env:
            url = urlparse(interpolate(env[var]))
            assert (url.hostname, port_of(env[var])) == (target, listening_port(target)), (
                f"service {name!r}: {var} must be http://{target}:{listening_port(target)}...")
            assert path is None or url.path == path, f"service {name!r}: {var} path must be {path}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_storage_urls_point_at_the_storage_services(name: str) -> None:
    env, pg = environment(name), environment("postgres")
    db = urlparse(interpolate(env["DATABASE_URL"]))
    assert (db.scheme, db.hostname, port_of(env["DATABASE_URL"])) == ("postgresql", "postgres",
                                                                      5432), (
        f"service {name!r}: DATABASE_URL must be postgresql://...@postgres:5432/...")
    assert (db.username, db.path.lstrip("/")) == (pg.get("POSTGRES_USER"), pg.get("POSTGRES_DB")), (
        f"service {name!r}: DATABASE_URL user and database must be POSTGRES_USER and POSTGRES_DB")
    if "REDIS_URL" in env:
        redis = urlparse(env["REDIS_URL"])
        assert (redis.hostname, port_of(env["REDIS_URL"])) == ("redis", 6379), (
            f"service {name!r}: REDIS_URL must be redis://redis:6379/<db>")
    for var in ("DATABASE_URL", "REDIS_URL"):
        assert env.get(var, "unset") in (environment("gateway")[var], "unset"), (
            f"service {name!r}: {var} must be the gateway's (one database, one Redis)")


# (d) healthchecks and start order -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HEALTH))
def test_healthcheck_probes_the_listening_port_with_python(name: str) -> None:
    test = (service(name).get("healthcheck") or {}).get("test")
    text = " ".join(test) if isinstance(test, list) else str(test)
    assert "python" in text and "urllib" in text, (
        f"service {name!r}: healthcheck must use python's urllib (slim images have no curl/wget)")
    path, body = HEALTH[name]
    url = f"http://127.0.0.1:{listening_port(name)}{path}"
    assert f"'{url}'" in text or f'"{url}"' in text, f"service {name!r}: healthcheck: request {url}"
    assert not body or body in text, f"service {name!r}: healthcheck: check the answer has {body!r}"


# Called only when a person acts (an agent's reply is recorded in Rasa's tracker), never to
# start: and Rasa waits for the admin service (its NLG endpoint), so waiting back would be a cycle.
NOT_WAITED_FOR = {("admin", "RASA_URL")}


def required_dependencies(name: str) -> dict[str, str]:
    """What a service must wait for, from the URLs it is given."""
    env = environment(name)
    needed = {"postgres": "service_healthy"} if "DATABASE_URL" in env else {}
    needed |= {"redis": "service_healthy"} if env.get("REDIS_URL") else {}
    needed |= {target: "service_healthy" for var, (target, _) in SERVICE_URLS.items()
               if var in env and (name, var) not in NOT_WAITED_FOR}
    if SERVICE_SETTINGS[name] is Settings:  # our tables exist once migrate has finished
        needed["migrate"] = "service_completed_successfully"
    return needed


@pytest.mark.parametrize("name", APP_SERVICES)
def test_depends_on_with_conditions(name: str) -> None:
    depends = service(name).get("depends_on") or {}
    assert isinstance(depends, dict), f"service {name!r}: depends_on: the long form, conditions"
    for target, condition in required_dependencies(name).items():
        got = (depends.get(target) or {}).get("condition")
        assert got == condition, f"service {name!r}: depends_on {target}: condition: {condition}"
    for target, spec in depends.items():
        if (spec or {}).get("condition") == "service_healthy":
            assert (service(target).get("healthcheck") or {}).get("test"), (
                f"service {name!r} waits for {target} healthy, but {target} has no healthcheck")


# (e) Dockerfiles ------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", sorted(BASE_IMAGES))
def test_dockerfile_basics(rel: str) -> None:
    built = {dockerfile_of(name) for name in APP_SERVICES}
    assert rel in built, f"no service builds {rel}; built: {sorted(built)}"
    base = instructions(rel, "FROM")[-1].split()[0]
    assert base == BASE_IMAGES[rel], f"{rel}: FROM {BASE_IMAGES[rel]}, not {base}"
    user = (instructions(rel, "USER") or ["root"])[-1].split(":")[0]
    assert user not in ("root", "0"), f"{rel}: set a USER: the process must not run as root"
    assert image_env(rel).get("PYTHONPATH") == "/app", f"{rel}: ENV PYTHONPATH=/app missing"
    assert instructions(rel, "WORKDIR")[-1] == "/app", f"{rel}: WORKDIR must be /app"
    for key in [*image_env(rel), *(a.split("=")[0] for a in instructions(rel, "ARG"))]:
        assert not SECRET_NAME.search(key), f"{rel}: {key} looks like a secret baked into the image"


@pytest.mark.parametrize("rel", sorted(BASE_IMAGES))
def test_dockerfile_installs_only_pinned_lock_files(rel: str) -> None:
    installs = [c[2:] for c in run_commands(rel) if c[:2] == ["pip", "install"]]
    assert installs, f"{rel}: no `pip install`"
    for args in map(iter, installs):
        locks: list[str] = []
        indexes: list[str] = []
        for arg in args:
            if arg in ("-r", "--requirement", "--extra-index-url", "--index-url"):
                (locks if arg.startswith(("-r", "--req")) else indexes).append(next(args))
            else:
                assert arg.startswith("-"), f"{rel}: `pip install {arg}`: install lock files only"
        assert locks, f"{rel}: pip install without -r <lock file>"
        for lock in locks:
            src = next((s for s, dest in image_paths(rel).items() if dest == f"/app/{lock}"), "")
            assert lock.endswith(".lock") and src, f"{rel}: {lock}: COPY a .lock file there"
            pins = [p for p in (ROOT / src).read_text().splitlines() if p.strip() and p[0] != "#"]
            assert all("==" in p for p in pins), f"{src}: pin {[p for p in pins if '==' not in p]}"
            # PyPI's torch wheels bundle CUDA (GBs); only PyTorch's CPU index is acceptable.
            torch = any(re.match(r"^torch\b", p, re.I) for p in pins)
            assert not torch or CPU_TORCH_INDEX in indexes, f"{rel}: torch from {CPU_TORCH_INDEX}"


def test_every_top_level_package_has_its_place() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    unplaced = packages - {*APP_IMAGE_PATHS, *NOT_IN_APP_IMAGE}
    assert not unplaced, (
        f"new top-level package(s) {sorted(unplaced)}: add them to APP_IMAGE_PATHS (and COPY them "
        f"in docker/app.Dockerfile), or to NOT_IN_APP_IMAGE when production never runs them")


@pytest.mark.parametrize(("name", "paths"), [("gateway", APP_IMAGE_PATHS),
                                              ("bot", BOT_IMAGE_PATHS)])
def test_image_holds_its_files_and_no_more(name: str, paths: tuple[str, ...]) -> None:
    rel = dockerfile_of(name)
    copied = image_paths(rel)
    for path in paths:
        assert copied.get(path) == f"/app/{path}", (
            f"{rel}: add `COPY {path} {path}` (the process loads it from /app/{path})")
    extra = sorted(s for s in copied if s not in paths and not s.startswith("requirements/"))
    assert not extra, f"{rel}: drop COPY {extra}: the image holds {paths} and its lock file only"


def test_bot_image_trains_like_the_makefile() -> None:
    rel = dockerfile_of("bot")
    for subcommand in ("data validate", "train"):
        words = ["rasa", *subcommand.split()]
        in_image = [c[len(words):] for c in run_commands(rel) if c[: len(words)] == words]
        expected = makefile_rasa_args(subcommand)
        assert in_image[:1] == [expected], f"{rel}: run `rasa {subcommand}` with {expected}"
    _, train = rasa_options(makefile_rasa_args("train"))
    model = f"{train['--out']}/{train['--fixed-model-name']}.tar.gz"
    _, run = rasa_options(rasa_run_args(command("bot"), "service 'bot'"))
    assert run.get("--model") == model, f"service 'bot': --model {model}, what the image trains"


def test_dockerignore_keeps_secrets_local_state_and_tools_out() -> None:
    lines = set((ROOT / ".dockerignore").read_text().splitlines())
    for entry in ("/var", "/.env", "**/*.env", "/.venv", "/.venv-bot", "/.git", "/models",
                  "/devtools", "/tests"):
        assert entry in lines, f".dockerignore: add {entry} (keeps it out of the build context)"
