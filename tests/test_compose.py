"""docker-compose.yml and docker/*.Dockerfile, checked against the code they run.

No Docker engine is needed (none runs here): the compose file is parsed as YAML and compared
with what the code expects.

- commands: the `bot` command has the Procfile's `rasa run` flags (only host and port values
  differ); actions, gateway and migrate run the modules the Procfile and Makefile run;
- environment: every variable a service's process reads is set for that service. What a
  process reads is found in the source, not listed by hand: starting from the module the
  command runs, follow its imports through our packages, then look in those files for
  `os.environ.get("X"`, `env.get("X"`, `_required(env, "X")`, and `${X}` in the YAML files
  Rasa loads;
- ports: only the gateway publishes, and every URL one service uses for another matches the
  port the other listens on;
- secrets come from the host with `${VAR:?message}`, never from the file or an image;
- the Dockerfiles install pinned lock files that exist, copy paths that exist, and copy every
  file the processes load.
"""

from __future__ import annotations

import ast
import configparser
import functools
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"

# Where our code reads its environment (DESIGN.md, Packages). Imports that leave these
# packages (rasa, sanic, ...) are not followed.
SOURCE_PACKAGES = ("core", "actions", "connectors", "tenants", "bot", "migrations", "knowledge",
                   "admin_api")

EXPECTED_SERVICES = {"postgres", "redis", "migrate", "bot", "actions", "gateway"}
APP_SERVICES = ("migrate", "bot", "actions", "gateway")  # services running our code
PUBLIC_SERVICE = "gateway"
PUBLIC_PORT = 8000

# Read by the code but fine to leave unset in production, each with the reason.
OPTIONAL_VARS = {
    "LOG_LEVEL": "defaults to INFO",
    "RASA_TIMEOUT": "the gateway's wait for one Rasa turn; the 30 s default is the production value",
    "SWITCHBOARD_VAR_DIR": "locates the embedded-mode SQLite files; with DATABASE_URL set nothing "
                           "is stored there, and the default /app/var exists, writable, in both "
                           "images",
    "KNOWLEDGE_EMBED_PRECISION": "auto picks bf16 where the CPU has it, fp32 elsewhere",
    "LLM_TIMEOUT": "the 8 s default is the production value",
    "ANTHROPIC_BASE_URL": "only tests point the SDK at a local fake",
    "PUBLIC_BASE_URL": "set it when a proxy fronts the gateway (Twilio signs the public URL); "
                       "without it the request's own URL is used",
    "TWILIO_API_URL": "defaults to Twilio's API; tests and `make run` point it at stand-ins",
    "GRAPH_API_URL": "defaults to Meta's Graph API; tests and `make run` point it at stand-ins",
    "SEND_ATTEMPTS": "4 tries per outbound message is the production value",
    "SANDBOX_SMTP_PORT": "only the development sandbox and the demo shop's dev credentials",
}

# Secrets a deployment may leave out: from the host when set, else empty (`${VAR:-}`), never literal.
OPTIONAL_SECRETS = {
    "ANTHROPIC_API_KEY": "without it knowledge answers are extractive (DESIGN.md, LLM)",
}

# Read by a module the service imports, but not used by what the service runs.
NOT_USED_BY = {
    "migrate": {
        "RASA_TOKEN": "core.bootstrap hands Settings a placeholder: it only prepares storage "
                      "(checked below)",
        "RASA_URL": "core.bootstrap uses only Settings.database_url and var_dir",
        "ACTION_SERVER_URL": "core.bootstrap uses only Settings.database_url and var_dir",
        "REDIS_URL": "core.bootstrap uses only Settings.database_url and var_dir",
        "ANTHROPIC_API_KEY": "core.bootstrap ingests documents; it never asks the LLM",
    },
    "actions": {
        # Settings carries the gateway's view of the other processes; the action server never
        # calls Rasa or itself (actions/runtime.py uses database_url and credentials_key).
        "RASA_URL": "the action server does not call Rasa",
        "ACTION_SERVER_URL": "the action server does not call itself",
    },
    "gateway": {
        "ANTHROPIC_API_KEY": "only the action server answers from the knowledge base",
    },
}

# Environment variables holding secrets: their value must come from the host, required.
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)")
REQUIRED_REF = re.compile(r"^\$\{(?P<var>[A-Za-z_][A-Za-z0-9_]*):\?(?P<msg>[^}]+)\}$")

PY_ENV_READ = re.compile(
    r"""(?:\bos\.environ\.get|\bos\.getenv|\benv\.get)\(\s*["'](?P<a>[A-Z][A-Z0-9_]*)["']"""
    r"""|\bos\.environ\[\s*["'](?P<b>[A-Z][A-Z0-9_]*)["']\s*\]"""
    r"""|\b_required\(\s*env\s*,\s*["'](?P<c>[A-Z][A-Z0-9_]*)["']"""
)
YAML_ENV_READ = re.compile(r"\$\{(?P<var>[A-Z][A-Z0-9_]*)")

# Rasa CLI spellings of the same option.
RASA_ALIASES = {"-i": "--interface", "-p": "--port", "-m": "--model"}


# ---------------------------------------------------------------------------------------------
# Reading the files


@functools.lru_cache(maxsize=1)
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), "docker-compose.yml is missing at the repository root"
    return yaml.safe_load(COMPOSE_FILE.read_text())


def service(name: str) -> dict[str, Any]:
    services = compose().get("services") or {}
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def interpolate(value: str) -> str:
    """Compose's variable syntax resolved the way a test can: defaults kept, host values
    replaced by `HOST-<VAR>` placeholders."""

    def one(match: re.Match[str]) -> str:
        var, op, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if op in (":-", "-"):
            return rest
        return f"HOST-{var}"

    value = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}", one, value)
    return value.replace("$$", "$")


def environment(name: str) -> dict[str, str]:
    raw = service(name).get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def command(name: str) -> list[str]:
    cmd = service(name).get("command")
    assert cmd, f"service {name!r}: no command (the images have no default command)"
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = (line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip(): shlex.split(cmd) for name, cmd in entries}


def strip_env_prefix(tokens: list[str]) -> tuple[dict[str, str], list[str]]:
    """`A=b C=d prog args` -> ({A: b, C: d}, [prog, args])."""
    env: dict[str, str] = {}
    while tokens and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[0]):
        key, value = tokens[0].split("=", 1)
        env[key] = value
        tokens = tokens[1:]
    return env, tokens


def makefile_recipe_lines() -> list[str]:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines()]


def makefile_rasa_args(subcommand: str) -> list[str]:
    """Arguments after `$(RASA) <subcommand>` in the Makefile's model target."""
    for line in makefile_recipe_lines():
        tokens = shlex.split(line) if line.startswith("$(RASA)") else []
        words = subcommand.split()
        if tokens[1:1 + len(words)] == words:
            return tokens[1 + len(words):]
    raise AssertionError(f"Makefile: no `$(RASA) {subcommand}` line")


def url_password(url: str) -> str | None:
    """The password of `scheme://user:password@host...`, read before any parsing: a
    `${VAR:?message}` in it may hold `?` or `/`, which urlparse takes for query or path."""
    match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:@/]*:(\$\{[^}]*\}|[^@]*)@", url)
    return match.group(1) if match else None


def port_of(url: str) -> int:
    parsed = urlparse(url)
    defaults = {"http": 80, "https": 443, "redis": 6379, "postgres": 5432, "postgresql": 5432}
    assert parsed.port or parsed.scheme in defaults, f"{url!r}: no port and no known scheme"
    return parsed.port or defaults[parsed.scheme]


# ---------------------------------------------------------------------------------------------
# Dockerfiles


@dataclass
class Dockerfile:
    path: Path
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuation lines joined

    @classmethod
    def load(cls, path: Path) -> "Dockerfile":
        logical: list[str] = []
        current = ""
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("#") and not current:
                continue
            if line.lstrip().startswith("#"):
                continue  # comment inside a continued instruction
            if line.rstrip().endswith("\\"):
                current += line.rstrip()[:-1] + " "
                continue
            current += line
            if current.strip():
                logical.append(current.strip())
            current = ""
        instructions = []
        for item in logical:
            word, _, rest = item.partition(" ")
            instructions.append((word.upper(), rest.strip()))
        return cls(path, instructions)

    def args(self, instruction: str) -> list[str]:
        return [rest for word, rest in self.instructions if word == instruction]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for rest in self.args("ENV"):
            for token in shlex.split(rest):
                if "=" in token:
                    key, value = token.split("=", 1)
                    values[key] = value
        return values

    def copies(self) -> list[tuple[list[str], str]]:
        """(sources, destination) of each COPY from the build context."""
        result = []
        for rest in self.args("COPY") + self.args("ADD"):
            tokens = shlex.split(rest)
            if any(t.startswith("--from") for t in tokens):
                continue
            tokens = [t for t in tokens if not t.startswith("--")]
            result.append((tokens[:-1], tokens[-1]))
        return result

    def workdir(self) -> str:
        dirs = self.args("WORKDIR")
        assert dirs, f"{self.rel}: no WORKDIR"
        return dirs[-1]

    def run_commands(self) -> list[list[str]]:
        """Each `&&`/`;`-separated command of every RUN, tokenized."""
        commands = []
        for rest in self.args("RUN"):
            lexer = shlex.shlex(rest, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            current: list[str] = []
            for token in lexer:
                if token in ("&&", ";", "||", "|"):
                    commands.append(current)
                    current = []
                else:
                    current.append(token)
            commands.append(current)
        return [c for c in commands if c]

    def image_paths(self) -> dict[str, str]:
        """Repository path -> absolute path in the image, for every COPY."""
        workdir = self.workdir()
        mapping = {}
        for sources, dest in self.copies():
            for src in sources:
                src = src.rstrip("/")
                if dest.endswith("/") and dest not in ("./",) and len(sources) > 1:
                    target = f"{dest.rstrip('/')}/{Path(src).name}"
                elif dest in ("./", "."):
                    target = f"{workdir}/{Path(src).name}"
                else:
                    target = dest.rstrip("/")
                if not target.startswith("/"):
                    target = f"{workdir}/{target}"
                mapping[src] = target
        return mapping

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(ROOT))


def dockerfile_of(name: str) -> Dockerfile:
    build = service(name).get("build")
    assert build, f"service {name!r}: no build section (our code runs from our own images)"
    if isinstance(build, str):
        build = {"context": build}
    context = ROOT / build.get("context", ".")
    assert context.resolve() == ROOT, f"service {name!r}: build context must be the repository root"
    path = context / build.get("dockerfile", "Dockerfile")
    assert path.is_file(), f"service {name!r}: {path.relative_to(ROOT)} does not exist"
    return Dockerfile.load(path)


def dockerignore_patterns() -> list[str]:
    path = ROOT / ".dockerignore"
    assert path.is_file(), ".dockerignore is missing: var/dev.env and .venv would enter the build context"
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip("/")
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(f"^{out}$")


def dockerignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a matched directory excludes its contents."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in dockerignore_patterns():
        negate = pattern.startswith("!")
        regex = _ignore_regex(pattern.lstrip("!"))
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded


# ---------------------------------------------------------------------------------------------
# What a process loads and which variables it reads


def module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def is_ours(dotted: str) -> bool:
    return dotted.split(".")[0] in SOURCE_PACKAGES


def imported_modules(path: Path) -> set[str]:
    """Every module of ours the file imports, at the top or inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    modules: set[str] = set()
    for name in found:
        if not is_ours(name):
            continue
        parts = name.split(".")
        modules.update(".".join(parts[: i + 1]) for i in range(len(parts)))  # parents run too
    return {m for m in modules if module_file(m)}


def package_modules(package: str) -> set[str]:
    base = ROOT.joinpath(*package.split("."))
    return {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in base.rglob("*.py")
    }


def alembic_env_file() -> Path:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "alembic.ini")
    location = parser.get("alembic", "script_location", raw=True).replace("%(here)s", str(ROOT))
    return Path(location) / "env.py"


@dataclass
class Process:
    service: str
    python_files: set[Path] = field(default_factory=set)
    yaml_files: set[Path] = field(default_factory=set)

    def reads(self) -> dict[str, set[str]]:
        """Variable -> the files (relative) that read it."""
        found: dict[str, set[str]] = {}
        for path in self.python_files:
            if path.relative_to(ROOT).parts[0] not in SOURCE_PACKAGES:
                continue
            for match in PY_ENV_READ.finditer(path.read_text()):
                var = match.group("a") or match.group("b") or match.group("c")
                found.setdefault(var, set()).add(str(path.relative_to(ROOT)))
        for path in self.yaml_files:
            for match in YAML_ENV_READ.finditer(path.read_text()):
                found.setdefault(match.group("var"), set()).add(str(path.relative_to(ROOT)))
        return found


def rasa_options(args: list[str]) -> tuple[list[str], dict[str, str | None]]:
    """`run --enable-api -p 5005 ...` -> (["run"], {"--enable-api": None, "--port": "5005", ...})."""
    positional: list[str] = []
    options: dict[str, str | None] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if token.startswith("-"):
            key = RASA_ALIASES.get(token, token)
            has_value = i + 1 < len(args) and not args[i + 1].startswith("-")
            options[key] = args[i + 1] if has_value else None
            i += 2 if has_value else 1
        else:
            positional.append(token)
            i += 1
    return positional, options


@functools.lru_cache(maxsize=None)
def process(name: str) -> Process:
    """The files the service's command loads, found from the command itself."""
    cmd = command(name)
    proc = Process(name)
    entries: set[str] = set()
    if "-m" in cmd:
        module = cmd[cmd.index("-m") + 1]
        main = f"{module}.__main__"
        entries.add(main if module_file(main) else module)
        assert module_file(module), f"service {name!r} runs `-m {module}`, which is not in the repository"
    elif Path(cmd[0]).name == "rasa":
        _, options = rasa_options(cmd[1:])
        for option in ("--endpoints", "--credentials"):
            if options.get(option):
                path = ROOT / str(options[option])
                assert path.is_file(), f"service {name!r}: {option} {path.name} is not in the repository"
                proc.yaml_files.add(path)
        # endpoints.yml names our classes for Rasa to import (bot.stores.EnvTrackerStore, ...).
        for yaml_file in list(proc.yaml_files):
            for dotted in re.findall(r"type:\s*[\"']?([\w.]+)", yaml_file.read_text()):
                if is_ours(dotted):
                    module = dotted if module_file(dotted) else dotted.rsplit(".", 1)[0]
                    assert module_file(module), f"{yaml_file.name} names {dotted}, not found"
                    entries.add(module)
    else:
        raise AssertionError(f"service {name!r}: command {cmd} is neither `python -m` nor `rasa`")

    seen: set[str] = set()
    todo = set(entries)
    for entry in entries:
        parts = entry.split(".")
        todo.update(".".join(parts[: i + 1]) for i in range(len(parts) - 1))
    extra_files: set[Path] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_file(module)
        if path is None:
            continue
        text = path.read_text()
        todo |= imported_modules(path) - seen
        # rasa-sdk imports every module of a registered package (actions/__main__.py).
        for package in re.findall(r"register_package\(\s*[\"']([\w.]+)[\"']", text):
            todo |= package_modules(package) - seen
        # Alembic runs migrations/env.py, found through alembic.ini.
        if "alembic.ini" in text and module_file(module) != alembic_env_file():
            env_py = alembic_env_file()
            if env_py not in extra_files:
                extra_files.add(env_py)
                todo |= imported_modules(env_py) - seen
    proc.python_files = {module_file(m) for m in seen if module_file(m)} | extra_files  # type: ignore[misc]
    return proc


def available_env(name: str) -> dict[str, str]:
    """Variables the container has: compose `environment` over the image's ENV."""
    env: dict[str, str] = {}
    if service(name).get("build"):
        env.update(dockerfile_of(name).env())
    env.update(environment(name))
    return env


# ---------------------------------------------------------------------------------------------
# The services


def test_compose_has_the_expected_services() -> None:
    services = set(compose().get("services") or {})
    assert services == EXPECTED_SERVICES, (
        f"docker-compose.yml services {sorted(services)}, expected {sorted(EXPECTED_SERVICES)}"
    )


def test_source_scan_finds_the_variables_we_know() -> None:
    """Guards the regexes: if the code's style of reading the environment changes, this fails
    instead of every coverage test silently passing."""
    found: set[str] = set()
    for package in SOURCE_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found |= {m.group("a") or m.group("b") or m.group("c")
                      for m in PY_ENV_READ.finditer(path.read_text())}
    found |= {m.group("var") for m in YAML_ENV_READ.finditer((ROOT / "endpoints.yml").read_text())}
    known = {"DATABASE_URL", "REDIS_URL", "SWITCHBOARD_CREDENTIALS_KEY", "RASA_TOKEN", "RASA_URL",
             "ACTION_SERVER_URL", "ACTION_ENDPOINT_URL", "ACTIONS_HOST", "ACTIONS_PORT",
             "GATEWAY_HOST", "GATEWAY_PORT"}
    assert known <= found, f"the source scan no longer finds {sorted(known - found)}"


# (a) commands ---------------------------------------------------------------------------------


def test_bot_command_has_the_procfile_flags() -> None:
    assert "bot" in procfile(), "Procfile has no `bot` line"
    _, proc_tokens = strip_env_prefix(procfile()["bot"])
    cmd = command("bot")
    assert Path(cmd[0]).name == Path(proc_tokens[0]).name == "rasa", (
        f"service 'bot': command starts with {cmd[0]!r}, the Procfile runs {proc_tokens[0]!r}"
    )
    proc_pos, proc_opts = rasa_options(proc_tokens[1:])
    cmd_pos, cmd_opts = rasa_options(cmd[1:])
    assert cmd_pos == proc_pos, f"service 'bot': rasa subcommand {cmd_pos}, Procfile has {proc_pos}"
    assert set(cmd_opts) == set(proc_opts), (
        f"service 'bot': flags differ from the Procfile's: missing {sorted(set(proc_opts) - set(cmd_opts))},"
        f" extra {sorted(set(cmd_opts) - set(proc_opts))}"
    )
    for flag, expected in proc_opts.items():
        got = cmd_opts[flag]
        if flag == "--interface":
            assert got == "0.0.0.0", f"service 'bot': {flag} is {got!r}; other containers reach it only on 0.0.0.0"
        elif flag == "--port":
            assert got and got.isdigit(), f"service 'bot': --port {got!r} is not a port"
        elif flag == "--auth-token":
            var = re.fullmatch(r"\$\{?([A-Za-z_]\w*)\}?", str(expected))
            assert var, f"Procfile: --auth-token {expected!r} is not a variable"
            ref = REQUIRED_REF.match(str(got))
            assert ref and ref.group("var") == var.group(1), (
                f"service 'bot': --auth-token must be ${{{var.group(1)}:?message}} from the host, got {got!r}"
            )
        else:
            assert got == expected, f"service 'bot': {flag} is {got!r}, the Procfile has {expected!r}"


@pytest.mark.parametrize("name", ["actions", "gateway"])
def test_app_service_runs_the_procfile_module(name: str) -> None:
    assert name in procfile(), f"Procfile has no {name!r} line"
    _, proc_tokens = strip_env_prefix(procfile()[name])
    cmd = command(name)
    assert Path(cmd[0]).name.startswith("python"), f"service {name!r}: runs {cmd[0]!r}, not python"
    assert cmd[1:] == proc_tokens[1:], (
        f"service {name!r}: runs {cmd[1:]}, the Procfile runs {proc_tokens[1:]}"
    )


def test_migrate_runs_what_make_run_runs_before_starting() -> None:
    bootstrap = [shlex.split(line) for line in makefile_recipe_lines()
                 if "-m core.bootstrap" in line and "--dev-env" not in line]
    assert bootstrap, "Makefile: no `python -m core.bootstrap` step in `run`"
    cmd = command("migrate")
    assert cmd[1:] == bootstrap[0][1:], f"service 'migrate': runs {cmd[1:]}, make run runs {bootstrap[0][1:]}"
    assert str(service("migrate").get("restart", "no")) == "no", "service 'migrate' is one-shot: restart must be \"no\""


def test_actions_gateway_and_migrate_share_one_image() -> None:
    files = {name: dockerfile_of(name).rel for name in ("actions", "gateway", "migrate")}
    assert len(set(files.values())) == 1, f"actions, gateway and migrate must use one app image: {files}"
    images = {name: service(name).get("image") for name in files}
    assert len(set(images.values())) == 1, f"one image name for the app services: {images}"


# (b) environment ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", APP_SERVICES)
def test_environment_covers_what_the_process_reads(name: str) -> None:
    reads = process(name).reads()
    assert reads, f"service {name!r}: found no environment reads in its code; the scan is broken"
    env = available_env(name)
    not_used = NOT_USED_BY.get(name, {})
    missing = {
        var: sorted(files) for var, files in reads.items()
        if var not in env and var not in OPTIONAL_VARS and var not in not_used
    }
    assert not missing, "\n".join(
        f"service {name!r}: {var} is read by {', '.join(files)} but docker-compose.yml does not set it"
        for var, files in sorted(missing.items())
    )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_environment_values_are_not_empty(name: str) -> None:
    empty = [var for var, value in environment(name).items() if not value.strip()]
    assert not empty, f"service {name!r}: {empty} set to an empty value"


def test_allow_lists_are_current() -> None:
    read_anywhere: set[str] = set()
    for name in APP_SERVICES:
        read_anywhere |= set(process(name).reads())
    stale = [var for var in OPTIONAL_VARS if var not in read_anywhere]
    stale += [f"{svc}:{var}" for svc, entries in NOT_USED_BY.items() for var in entries
              if var not in process(svc).reads()]
    assert not stale, f"allow-listed variables no process reads any more (remove them): {stale}"
    bootstrap = (ROOT / "core" / "bootstrap.py").read_text()
    for var in ("RASA_TOKEN",):
        assert re.search(rf"setdefault\(\"{var}\"", bootstrap), (
            f"service 'migrate': core/bootstrap.py no longer substitutes {var}, so migrate now "
            f"needs it: set it in docker-compose.yml and drop it from NOT_USED_BY"
        )


def test_bot_workers_share_a_redis_lock_store() -> None:
    env = environment("bot")
    workers = int(env.get("SANIC_WORKERS", "1"))
    if workers > 1:
        # Rasa accepts any custom lock-store type for several workers; bot/stores.py falls
        # back to an in-memory lock (one per worker) when REDIS_URL is empty.
        assert env.get("REDIS_URL", "").startswith("redis"), (
            f"service 'bot': SANIC_WORKERS={workers} needs REDIS_URL (a lock shared by the workers)"
        )


# (c) ports and URLs ---------------------------------------------------------------------------


def published_ports(name: str) -> list[tuple[str | None, int]]:
    """(host port, container port) of each `ports` entry."""
    result = []
    for entry in service(name).get("ports") or []:
        if isinstance(entry, dict):
            result.append((str(entry.get("published")) if entry.get("published") else None,
                           int(entry["target"])))
            continue
        spec = str(entry).split("/")[0]
        parts = spec.rsplit(":", 2)
        container = int(parts[-1])
        host = parts[-2] if len(parts) >= 2 else None
        result.append((host, container))
    return result


def listening_port(name: str) -> int:
    if name == "bot":
        _, options = rasa_options(command("bot")[1:])
        return int(str(options["--port"]))
    var = {"actions": "ACTIONS_PORT", "gateway": "GATEWAY_PORT"}[name]
    value = environment(name).get(var)
    assert value, f"service {name!r}: set {var} explicitly (its URL in other services depends on it)"
    return int(value)


def test_gateway_publishes_its_listening_port() -> None:
    ports = published_ports(PUBLIC_SERVICE)
    container_port = listening_port(PUBLIC_SERVICE)
    assert ports, f"service {PUBLIC_SERVICE!r}: publishes no port"
    assert (str(PUBLIC_PORT), container_port) in ports, (
        f"service {PUBLIC_SERVICE!r}: must publish {PUBLIC_PORT}:{container_port} "
        f"(GATEWAY_PORT={container_port}), has {ports}"
    )
    assert environment(PUBLIC_SERVICE).get("GATEWAY_HOST", "0.0.0.0") == "0.0.0.0", (
        f"service {PUBLIC_SERVICE!r}: GATEWAY_HOST must be 0.0.0.0 to be reachable from the host"
    )


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES - {PUBLIC_SERVICE}))
def test_internal_services_publish_nothing(name: str) -> None:
    assert not service(name).get("ports"), (
        f"service {name!r}: publishes {service(name).get('ports')}; only {PUBLIC_SERVICE} may"
    )


def internal_networks() -> set[str]:
    networks = compose().get("networks") or {}
    return {n for n, spec in networks.items() if isinstance(spec, dict) and spec.get("internal")}


@pytest.mark.parametrize("name", ["bot", "postgres", "redis"])
def test_backend_services_are_on_internal_networks_only(name: str) -> None:
    networks = service(name).get("networks")
    names = set(networks) if networks else {"default"}
    outside = names - internal_networks()
    assert not outside, f"service {name!r}: on non-internal networks {sorted(outside)}"


def test_app_services_listen_on_all_interfaces() -> None:
    _, options = rasa_options(command("bot")[1:])
    assert options.get("--interface") == "0.0.0.0", "service 'bot': rasa must listen on -i 0.0.0.0"
    assert environment("actions").get("ACTIONS_HOST") == "0.0.0.0", (
        "service 'actions': ACTIONS_HOST must be 0.0.0.0 (the code defaults to 127.0.0.1, "
        "unreachable from the bot and gateway containers)"
    )


# Variable -> (service it points at, path it must have or None).
SERVICE_URLS = {
    "RASA_URL": ("bot", None),
    "ACTION_SERVER_URL": ("actions", None),
    "ACTION_ENDPOINT_URL": ("actions", "/webhook"),
}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_urls_point_at_the_listening_ports(name: str) -> None:
    env = environment(name)
    for var, (target, path) in SERVICE_URLS.items():
        if var not in env:
            continue
        url = urlparse(interpolate(env[var]))
        assert url.hostname == target, f"service {name!r}: {var}={env[var]} must point at service {target!r}"
        assert port_of(interpolate(env[var])) == listening_port(target), (
            f"service {name!r}: {var}={env[var]} but {target} listens on {listening_port(target)}"
        )
        if path is not None:
            assert url.path == path, f"service {name!r}: {var} path must be {path}, is {url.path!r}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_storage_urls_point_at_the_storage_services(name: str) -> None:
    env = environment(name)
    pg = environment("postgres")
    db = urlparse(interpolate(env["DATABASE_URL"]))
    assert db.scheme in ("postgresql", "postgres"), f"service {name!r}: DATABASE_URL is not PostgreSQL"
    assert (db.hostname, port_of(interpolate(env["DATABASE_URL"]))) == ("postgres", 5432), (
        f"service {name!r}: DATABASE_URL must point at postgres:5432"
    )
    assert db.username == pg.get("POSTGRES_USER"), f"service {name!r}: DATABASE_URL user is not POSTGRES_USER"
    assert db.path.lstrip("/") == pg.get("POSTGRES_DB"), f"service {name!r}: DATABASE_URL database is not POSTGRES_DB"
    if "REDIS_URL" not in env:
        return
    redis = urlparse(interpolate(env["REDIS_URL"]))
    assert (redis.scheme, redis.hostname, port_of(interpolate(env["REDIS_URL"]))) == ("redis", "redis", 6379), (
        f"service {name!r}: REDIS_URL must be redis://redis:6379/<db>, is {env['REDIS_URL']}"
    )


def test_all_services_share_one_database_and_redis() -> None:
    for var in ("DATABASE_URL", "REDIS_URL"):
        urls = {environment(n)[var] for n in APP_SERVICES if var in environment(n)}
        assert len(urls) == 1, f"services disagree on {var}: {urls}"


# healthchecks and start order -----------------------------------------------------------------

HEALTH = {  # service -> (path, text the answer must contain or None)
    "bot": ("/", "Hello from Rasa"),
    "actions": ("/health", None),
    "gateway": ("/health", None),
}


@pytest.mark.parametrize("name", sorted(HEALTH))
def test_healthcheck_probes_the_listening_port_with_python(name: str) -> None:
    check = service(name).get("healthcheck") or {}
    test = check.get("test")
    assert test, f"service {name!r}: no healthcheck"
    text = " ".join(test) if isinstance(test, list) else str(test)
    assert "curl" not in text and "wget" not in text, f"service {name!r}: slim images have no curl/wget; use python"
    assert "python" in text and "urllib" in text, f"service {name!r}: healthcheck should use python's urllib"
    path, body = HEALTH[name]
    url = f"http://127.0.0.1:{listening_port(name)}{path}"
    assert f"'{url}'" in text or f'"{url}"' in text, f"service {name!r}: healthcheck must request {url}: {text}"
    if body:
        assert body in text, f"service {name!r}: healthcheck must check the answer contains {body!r}"


@pytest.mark.parametrize("name", ["postgres", "redis"])
def test_storage_has_healthcheck(name: str) -> None:
    assert (service(name).get("healthcheck") or {}).get("test"), f"service {name!r}: no healthcheck"


def required_dependencies(name: str) -> dict[str, str]:
    """What a service must wait for, derived from what it reads and the URLs it uses."""
    env = environment(name)
    reads = process(name).reads()
    needed: dict[str, str] = {}
    if "DATABASE_URL" in reads:
        needed["postgres"] = "service_healthy"
    if "REDIS_URL" in reads and env.get("REDIS_URL"):
        needed["redis"] = "service_healthy"
    for var, (target, _) in SERVICE_URLS.items():
        if var in env and var not in NOT_USED_BY.get(name, {}) and target != name:
            needed[target] = "service_healthy"
    # Our tables exist only once migrate has finished (bot uses Rasa's own table only).
    if name not in ("migrate", "bot") and "DATABASE_URL" in reads:
        needed["migrate"] = "service_completed_successfully"
    return needed


@pytest.mark.parametrize("name", APP_SERVICES)
def test_depends_on_with_conditions(name: str) -> None:
    depends = service(name).get("depends_on") or {}
    assert isinstance(depends, dict), (
        f"service {name!r}: depends_on must use the long form with conditions, not {depends}"
    )
    for target, condition in required_dependencies(name).items():
        got = (depends.get(target) or {}).get("condition")
        assert got == condition, f"service {name!r}: depends_on {target} must have condition {condition}, has {got}"
    for target, spec in depends.items():
        assert target in EXPECTED_SERVICES, f"service {name!r}: depends_on unknown service {target!r}"
        cond = (spec or {}).get("condition")
        if cond == "service_healthy":
            assert (service(target).get("healthcheck") or {}).get("test"), (
                f"service {name!r} waits for {target} healthy, but {target} has no healthcheck"
            )


# (d) secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES))
def test_secrets_come_from_required_host_variables(name: str) -> None:
    for var, value in environment(name).items():
        if var in OPTIONAL_SECRETS:
            assert value == f"${{{var}:-}}", f"service {name!r}: {var} must be ${{{var}:-}} (host or empty)"
        elif SECRET_NAME.search(var):
            ref = REQUIRED_REF.match(value)
            assert ref and ref.group("var") == var, (
                f"service {name!r}: {var} must be ${{{var}:?message}} (required, from the host), is {value!r}"
            )
        password = url_password(value)
        if password is not None:
            assert REQUIRED_REF.match(password), (
                f"service {name!r}: the password in {var} must be ${{VAR:?message}} from the host"
            )


def test_database_password_is_the_postgres_password() -> None:
    pg = REQUIRED_REF.match(environment("postgres").get("POSTGRES_PASSWORD", ""))
    assert pg, "service 'postgres': POSTGRES_PASSWORD must be ${POSTGRES_PASSWORD:?message}"
    for name in APP_SERVICES:
        password = url_password(environment(name)["DATABASE_URL"])
        ref = REQUIRED_REF.match(password or "")
        assert ref and ref.group("var") == pg.group("var"), (
            f"service {name!r}: DATABASE_URL password must be ${{{pg.group('var')}:?...}}"
        )


# (e) Dockerfiles ------------------------------------------------------------------------------

BASE_IMAGES = {  # DESIGN.md, Processes: Rasa needs Python 3.10, our code runs on 3.11
    "docker/bot.Dockerfile": "python:3.10-slim",
    "docker/app.Dockerfile": "python:3.11-slim",
}


def built_dockerfiles() -> dict[str, Dockerfile]:
    return {dockerfile_of(n).rel: dockerfile_of(n) for n in APP_SERVICES}


@pytest.mark.parametrize("rel", sorted(BASE_IMAGES))
def test_dockerfile_basics(rel: str) -> None:
    files = built_dockerfiles()
    assert rel in files, f"no service builds {rel}; built: {sorted(files)}"
    df = files[rel]
    assert df.args("FROM")[-1].split()[0] == BASE_IMAGES[rel], f"{rel}: FROM {df.args('FROM')}, expected {BASE_IMAGES[rel]}"
    users = df.args("USER")
    assert users, f"{rel}: no USER: the process would run as root"
    assert users[-1].split(":")[0] not in ("root", "0"), f"{rel}: last USER is {users[-1]!r} (root)"
    assert df.env().get("PYTHONPATH") == "/app", f"{rel}: ENV PYTHONPATH=/app missing"
    assert df.workdir() == "/app", f"{rel}: WORKDIR must be /app (PYTHONPATH and relative paths in commands)"
    for key in list(df.env()) + [a.split("=")[0].split()[0] for a in df.args("ARG")]:
        assert not SECRET_NAME.search(key), f"{rel}: {key} looks like a secret baked into the image"


CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


@pytest.mark.parametrize("rel", sorted(BASE_IMAGES))
def test_dockerfile_installs_only_existing_lock_files(rel: str) -> None:
    df = built_dockerfiles()[rel]
    copied = df.image_paths()
    installs = [c for c in df.run_commands() if c[:2] == ["pip", "install"] or c[1:3] == ["-m", "pip"]]
    assert installs, f"{rel}: no `pip install`"
    for tokens in installs:
        args = tokens[2:] if tokens[0] == "pip" else tokens[4:]
        i = 0
        locks = []
        indexes = []
        while i < len(args):
            if args[i] in ("-r", "--requirement", "-c", "--constraint"):
                locks.append(args[i + 1])
                i += 2
            elif args[i] in ("--extra-index-url", "--index-url", "-i"):
                indexes.append(args[i + 1])
                i += 2
            elif args[i].startswith("-"):
                i += 1
            else:
                raise AssertionError(f"{rel}: `pip install {args[i]}` installs outside the lock files")
        assert locks, f"{rel}: pip install without -r <lock file>"
        for lock in locks:
            assert lock.endswith(".lock"), f"{rel}: installs {lock}, not a pinned .lock file"
            in_image = lock if lock.startswith("/") else f"{df.workdir()}/{lock}"
            sources = [src for src, dest in copied.items() if dest == in_image]
            assert sources, f"{rel}: installs {lock}, which no COPY puts there"
            for src in sources:
                path = ROOT / src
                assert path.is_file(), f"{rel}: lock file {src} does not exist"
                pins = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
                unpinned = [line for line in pins if "==" not in line]
                assert not unpinned, f"{src}: not pinned: {unpinned[:5]}"
                torch = [line for line in pins if re.match(r"^torch\b", line, re.I)]
                # PyPI's torch wheels bundle CUDA (GBs); only PyTorch's CPU index is acceptable.
                assert not torch or CPU_TORCH_INDEX in indexes, (
                    f"{src}: {torch} installed into {rel} without {CPU_TORCH_INDEX} (CUDA build)")


@pytest.mark.parametrize("rel", sorted(BASE_IMAGES))
def test_dockerfile_copies_existing_unignored_paths(rel: str) -> None:
    df = built_dockerfiles()[rel]
    for sources, _ in df.copies():
        for src in sources:
            matches = list(ROOT.glob(src.rstrip("/")))
            assert matches, f"{rel}: COPY {src}: not in the repository"
            for match in matches:
                relpath = str(match.relative_to(ROOT))
                assert not dockerignored(relpath), f"{rel}: COPY {src}: excluded by .dockerignore"
                assert relpath.split("/")[0] not in ("var", ".venv", ".venv-bot", ".git"), (
                    f"{rel}: COPY {src} would put local state or secrets in the image"
                )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_image_contains_every_file_the_process_loads(name: str) -> None:
    df = dockerfile_of(name)
    copied = df.image_paths()
    proc = process(name)
    needed = {str(p.relative_to(ROOT)) for p in proc.python_files | proc.yaml_files}
    if name == "migrate":
        needed.add("alembic.ini")
        needed |= {str(p.relative_to(ROOT)) for p in (alembic_env_file().parent / "versions").glob("*.py")}
    workdir = df.workdir()
    missing, misplaced = [], []
    for path in sorted(needed):
        src = next((s for s in copied if path == s or path.startswith(s + "/")), None)
        if src is None:
            missing.append(path)
        elif copied[src] + path[len(src):] != f"{workdir}/{path}":
            # Imports (PYTHONPATH=/app) and relative paths in commands expect the repo layout.
            misplaced.append(f"{path} -> {copied[src] + path[len(src):]}")
    assert not missing, f"service {name!r}: {df.rel} does not copy {missing}"
    assert not misplaced, f"service {name!r}: {df.rel} copies away from the repository layout: {misplaced}"


def test_bot_image_trains_like_the_makefile() -> None:
    df = dockerfile_of("bot")
    runs = df.run_commands()
    for subcommand in ("data validate", "train"):
        words = ["rasa", *subcommand.split()]
        in_image = [c[len(words):] for c in runs if c[: len(words)] == words]
        assert in_image, f"{df.rel}: no `rasa {subcommand}`"
        expected = makefile_rasa_args(subcommand)
        assert in_image[0] == expected, (
            f"{df.rel}: `rasa {subcommand}` args {in_image[0]}, the Makefile uses {expected}"
        )
    _, train = rasa_options(makefile_rasa_args("train"))
    model = f"{train['--out']}/{train['--fixed-model-name']}.tar.gz"
    _, run = rasa_options(command("bot")[1:])
    assert run.get("--model") == model, f"service 'bot': --model {run.get('--model')}, the image trains {model}"
    for option in ("--domain", "--data", "--config"):
        assert (ROOT / str(train[option])).exists(), f"Makefile: {option} {train[option]} not in the repository"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    for path in ("var/dev.env", ".env", ".venv/bin/python", ".venv-bot/bin/python", ".git/config",
                 "models/switchboard.tar.gz"):
        assert dockerignored(path), f".dockerignore must exclude {path}"


def test_compose_file_contains_no_literal_secret() -> None:
    """A cheap tripwire over the raw text: no `KEY: value` for secret-named keys except `${...:?`."""
    for number, line in enumerate(COMPOSE_FILE.read_text().splitlines(), 1):
        match = re.match(r"^\s*-?\s*([A-Z][A-Z0-9_]*)\s*[:=]\s*(\S.*)$", line)
        if match and match.group(1) in OPTIONAL_SECRETS:
            assert match.group(2) == f"${{{match.group(1)}:-}}", f"docker-compose.yml:{number}: literal {match.group(1)}"
        elif match and SECRET_NAME.search(match.group(1)):
            assert match.group(2).startswith("${") and ":?" in match.group(2), (
                f"docker-compose.yml:{number}: {match.group(1)} is not taken from the host with ${{VAR:?message}}"
            )
