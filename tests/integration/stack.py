"""Start the real stack for a test session: bootstrap, Rasa server, action server, gateway.

Each process runs from the repository's own virtual environments with the trained model,
on free loopback ports, with its output in a log file that is printed when a start fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tests.servers import free_port

if TYPE_CHECKING:
    from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# SWITCHBOARD_MODEL points the tests and benches at another trained model (one trained from
# changed rules or domain into a folder of its own, while models/ serves everyone else).
MODEL = Path(os.environ.get("SWITCHBOARD_MODEL") or ROOT / "models" / "switchboard.tar.gz")
APP_PY = ROOT / ".venv" / "bin" / "python"
RASA = ROOT / ".venv-bot" / "bin" / "rasa"
BOT_PY = ROOT / ".venv-bot" / "bin" / "python"
# Demo shop rates for benches that play hundreds of visitors of one shop from one address.
NO_RATE_LIMITS = {"rate_per_client": 0, "rate_per_conversation": 0, "rate_per_shop": 0}
TOKEN = "integration-token"  # RASA_TOKEN of every process; on no command line (bot/serve.py)


def rasa_headers(rasa_token: str = TOKEN) -> dict[str, str]:
    """The Authorization header for Rasa's HTTP API (tracker, status, parse) as the gateway
    sends it: a JWT keyed by RASA_TOKEN (bot/serve.py). Valid for a day, for long benches."""
    from core.rasa_http import rasa_api_token
    from core.settings import BotSettings

    key = BotSettings.from_env({"RASA_TOKEN": rasa_token}).rasa_jwt_key
    return {"Authorization": f"Bearer {rasa_api_token(key, lifetime=86400)}"}


@dataclass
class Stack:
    var_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    rasa_port: int = field(default_factory=free_port)
    actions_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    # Metrics (core/metrics.py) on ports of their own, so stacks and `make run` do not collide.
    gateway_metrics_port: int = field(default_factory=free_port)
    actions_metrics_port: int = field(default_factory=free_port)
    bot_metrics_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    admin_metrics_port: int = field(default_factory=free_port)
    workshop_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. the fake Messages API
    # The demo shop's rate limits (messages a minute: rate_per_client, rate_per_conversation,
    # rate_per_shop; 0 turns one off), set before the gateway starts: benches whose hundreds of
    # visitors share one address and one shop raise them.
    demo_rates: dict[str, int] = field(default_factory=dict)
    model: Path = MODEL

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def admin(self) -> str:
        """The admin service (API, pages, Rasa's NLG endpoint)."""
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def rasa(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    def metrics(self, process: str = "gateway") -> str:
        """The Prometheus text a process serves (`gateway`, `actions` or `bot`)."""
        port = {"gateway": self.gateway_metrics_port, "actions": self.actions_metrics_port,
                "bot": self.bot_metrics_port, "admin": self.admin_metrics_port}
        response = httpx.get(f"http://127.0.0.1:{port[process]}/metrics", timeout=5)
        response.raise_for_status()
        return response.text

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            SWITCHBOARD_VAR_DIR=str(self.var_dir),
            SWITCHBOARD_CREDENTIALS_KEY="lD3k5cRsZ0sJ2zv0cH2b1K0mD0vYt8bqz9vO3J2bX1c=",
            RASA_TOKEN=TOKEN,
            RASA_URL=self.rasa,
            ACTION_SERVER_URL=f"http://127.0.0.1:{self.actions_port}",
            ACTION_ENDPOINT_URL=f"http://127.0.0.1:{self.actions_port}/webhook",
            ACTIONS_HOST="127.0.0.1",
            ACTIONS_PORT=str(self.actions_port),
            GATEWAY_HOST="127.0.0.1",
            GATEWAY_PORT=str(self.gateway_port),
            METRICS_HOST="127.0.0.1",
            GATEWAY_METRICS_PORT=str(self.gateway_metrics_port),
            ACTIONS_METRICS_PORT=str(self.actions_metrics_port),
            BOT_METRICS_PORT=str(self.bot_metrics_port),
            ADMIN_HOST="127.0.0.1",
            ADMIN_PORT=str(self.admin_port),
            ADMIN_METRICS_PORT=str(self.admin_metrics_port),
            NLG_URL=f"{self.admin}/nlg",
            # Where the admin service hands agents' replies to the gateway, and where the
            # gateway and the action server post live events without Redis (this stack's ports).
            GATEWAY_URL=self.gateway,
            ADMIN_URL=self.admin,
            # The workshop (Rasa's checks of drafts, training of shops' models) starts only for
            # the tests that need it (ensure_workshop): Rasa's import costs seconds of CPU.
            WORKSHOP_PORT=str(self.workshop_port),
            WORKSHOP_URL=f"http://127.0.0.1:{self.workshop_port}",
            # One shop model resident at a time besides the base (each costs more than 1 MB,
            # and the newest is always kept): every test that uses two shops' models sees
            # the runtime unload one and load it again (tests/integration/test_shop_models.py).
            BOT_MODEL_MEMORY_MB="1",
            # The admin service loads the document embedder on the first upload instead of at
            # start: bootstrap ingests the demo documents in a process of its own, and only
            # tests/integration/test_knowledge_api.py uploads through a stack's admin service
            # (the warm-up costs every stack ~2 s of CPU and ~250 MB it would never use).
            KNOWLEDGE_WARM="false",
            COOKIE_SECURE="false",
            # Shops' servers here (callbacks, SMTP, webhooks) are local fakes on loopback.
            ALLOW_PRIVATE_DESTINATIONS="true",
            RASA_TIMEOUT="20",
            PYTHONPATH=str(ROOT),
            LOG_LEVEL="INFO",
        )
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.var_dir / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_rasa(self) -> None:
        self._spawn("bot", [str(BOT_PY), "-m", "bot.serve", "run", "--enable-api",
                            "-i", "127.0.0.1", "-p", str(self.rasa_port),
                            "--model", str(self.model),
                            "--endpoints", "endpoints.yml", "--credentials", "credentials.yml"])

    def start_actions(self) -> None:
        self._spawn("actions", [str(APP_PY), "-m", "actions"])

    def start_gateway(self) -> None:
        self._spawn("gateway", [str(APP_PY), "-m", "connectors"])

    def start_admin(self) -> None:
        self._spawn("admin", [str(APP_PY), "-m", "admin_api", "serve"])

    def ensure_workshop(self, timeout: float = 120.0) -> str:
        """The workshop, started at the first call; its URL once it has Rasa loaded."""
        url = f"http://127.0.0.1:{self.workshop_port}"
        if "workshop" not in self.procs:
            self._spawn("workshop", [str(BOT_PY), "-m", "bot.workshop"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs["workshop"].poll() is not None:
                raise RuntimeError(f"workshop exited early:\n{self.log_tail('workshop')}")
            try:
                if httpx.get(f"{url}/health", timeout=3).json().get("ready"):
                    return url
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"workshop not ready after {timeout}s\n{self.log_tail('workshop')}")

    def bootstrap(self) -> None:
        # An env file to exist is bootstrap's cue to keep the demo shop's REST key there.
        (self.var_dir / "dev.env").touch()
        subprocess.run([str(APP_PY), "-m", "devtools.bootstrap"], cwd=ROOT, env=self.env(),
                       check=True, capture_output=True)

    @property
    def rest_key(self) -> str:
        """The demo shop's REST API key, as bootstrap wrote it (DEMO_REST_KEY)."""
        from devtools.bootstrap import env_value

        key = env_value(self.var_dir / "dev.env", "DEMO_REST_KEY")
        assert key, f"bootstrap wrote no DEMO_REST_KEY to {self.var_dir / 'dev.env'}"
        return key

    def admin_key(self, role: str) -> str:
        """The demo shop's admin API key for `role` (owner, designer, agent), as bootstrap
        wrote it (DEMO_OWNER_KEY, DEMO_DESIGNER_KEY, DEMO_AGENT_KEY)."""
        from devtools.bootstrap import env_value

        name = f"DEMO_{role.upper()}_KEY"
        key = env_value(self.var_dir / "dev.env", name)
        assert key, f"bootstrap wrote no {name} to {self.var_dir / 'dev.env'}"
        return key

    def admin_client(self, role: str) -> httpx.Client:
        """The admin API (/api/v1) with the demo shop's key for `role`; close it (with)."""
        return httpx.Client(base_url=f"{self.admin}/api/v1", timeout=30,
                            headers={"Authorization": f"Bearer {self.admin_key(role)}"})

    def issue_admin_key(self, slug: str, role: str) -> str:
        """A new admin API key of shop `slug` for `role`, as `python -m admin_api keys create`
        prints it (the last line)."""
        done = subprocess.run([str(APP_PY), "-m", "admin_api", "keys", "create", "--tenant", slug,
                               "--role", role, "--name", f"integration {role}"],
                              cwd=ROOT, env=self.env(), check=True, capture_output=True,
                              text=True)
        return done.stdout.strip().splitlines()[-1].strip()

    def issue_rest_key(self, slug: str) -> str:
        """A new REST API key of shop `slug` (`python -m tenants keys create`)."""
        done = subprocess.run([str(APP_PY), "-m", "tenants", "keys", "create", "--tenant", slug,
                               "--name", "integration"],
                              cwd=ROOT, env=self.env(), check=True, capture_output=True,
                              text=True)
        return next(line.strip() for line in done.stdout.splitlines()
                    if line.startswith("sb_live_"))

    def settings(self) -> Settings:
        """The settings every process of this stack reads (keys derived from its credentials
        key: conversation ids, the internal routes' token)."""
        from core.settings import Settings

        return Settings.from_env(self.env())

    def conversation_id(self, tenant_id: str, sender_id: str) -> str:
        """The admin API's opaque id of a conversation (admin_api/routes/conversations.py)."""
        from admin_api.routes.conversations import conversation_id

        return conversation_id(self.settings().conversation_id_key, tenant_id, sender_id)

    def rest_headers(self) -> dict[str, str]:
        """What a post to the demo shop's REST channel carries: its key."""
        return {"Authorization": f"Bearer {self.rest_key}"}

    def start(self, timeout: float = 180.0) -> Stack:
        assert self.model.exists(), f"no trained model at {self.model}: run `make train`"
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.bootstrap()
        if self.demo_rates:
            self.set_rates("demo", **self.demo_rates)
        self.start_rasa()
        self.start_actions()
        self.start_gateway()
        self.start_admin()
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.log_tail(name)}")
            try:
                response = httpx.get(f"{self.gateway}/health", timeout=3)
                if response.status_code == 200 and httpx.get(
                        f"{self.admin}/health", timeout=3).status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise RuntimeError(f"stack not healthy after {timeout}s: {last}\n"
                           + "\n".join(self.log_tail(n) for n in self.procs))

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.var_dir / f"{name}.log"
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        return f"--- {name} ---\n" + "\n".join(text[-lines:])

    def start_second_gateway(self) -> str:
        """Another gateway process on the same storage (scale-out); returns its base URL.

        Behind a load balancer both share one public URL, the one providers sign: here the
        first gateway's."""
        port = free_port()
        log = open(self.var_dir / "gateway2.log", "wb")
        self.procs["gateway2"] = subprocess.Popen(
            [str(APP_PY), "-m", "connectors"], cwd=ROOT,
            env={**self.env(), "GATEWAY_PORT": str(port), "PUBLIC_BASE_URL": self.gateway,
                 "GATEWAY_METRICS_PORT": str(free_port())},
            stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=3).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("second gateway not healthy:\n" + self.log_tail("gateway2"))

    def rasa_headers(self) -> dict[str, str]:
        """The Authorization header this stack's Rasa HTTP API wants (tracker, status)."""
        return rasa_headers(self.env()["RASA_TOKEN"])

    @property
    def database(self) -> str:
        """Our tables' database as a plain URL (for tests reading what was stored)."""
        return self.database_url or f"sqlite:///{self.var_dir / 'switchboard.db'}"

    def demo_credentials(self) -> dict:
        """The demo shop's channel credentials as bootstrap sealed them."""
        from sqlalchemy import text

        from devtools.demo_shop import DEMO_TENANT_ID
        from tenants.crypto import CredentialsBox
        from tests.databases import sync_engine

        engine = sync_engine(self.database)
        try:
            with engine.connect() as conn:
                token = conn.execute(
                    text("SELECT credentials_encrypted FROM tenants WHERE id = :id"),
                    {"id": DEMO_TENANT_ID}).scalar_one()
        finally:
            engine.dispose()
        return CredentialsBox(self.env()["SWITCHBOARD_CREDENTIALS_KEY"]).open(bytes(token))

    def set_credentials(self, tenant_id: str, credentials: dict) -> None:
        """Seal a shop's channel credentials as `python -m tenants` does (set before the
        gateway first serves the shop: it keeps a resolved shop for 30 s)."""
        from sqlalchemy import text

        from tenants.crypto import CredentialsBox
        from tests.databases import sync_engine

        sealed = CredentialsBox(self.env()["SWITCHBOARD_CREDENTIALS_KEY"]).seal(credentials)
        engine = sync_engine(self.database)
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE tenants SET credentials_encrypted = :c WHERE id = :id"),
                             {"c": sealed, "id": tenant_id})
        finally:
            engine.dispose()

    def set_rates(self, slug: str, **rates: int) -> None:
        """A shop's rate limits (the gateway reads them again within 30 s)."""
        from sqlalchemy import text

        from tests.databases import sync_engine

        assignments = ", ".join(f"{name} = :{name}" for name in rates)
        engine = sync_engine(self.database)
        try:
            with engine.begin() as conn:
                conn.execute(text(f"UPDATE tenants SET {assignments} WHERE slug = :slug"),
                             {**rates, "slug": slug})
        finally:
            engine.dispose()

    def add_shop_like_demo(self, slug: str, widget_key: str, **rates: int) -> str:
        """Another shop with the demo shop's settings and credentials; returns its id."""
        import uuid

        from sqlalchemy import text

        from devtools.demo_shop import DEMO_TENANT_ID
        from tests.databases import sync_engine

        tenant_id = str(uuid.uuid4())
        engine = sync_engine(self.database)
        try:
            with engine.begin() as conn:
                row = dict(conn.execute(text("SELECT * FROM tenants WHERE id = :id"),
                                        {"id": DEMO_TENANT_ID}).mappings().one())
                row.update(id=tenant_id, slug=slug, name=slug.title(), widget_key=widget_key,
                           widget_theme=None,
                           **rates)
                columns = ", ".join(row)
                conn.execute(text(f"INSERT INTO tenants ({columns}) VALUES "
                                  f"({', '.join(':' + c for c in row)})"), row)
        finally:
            engine.dispose()
        return tenant_id

    def kill_process(self, name: str) -> None:
        """SIGKILL, as a crash or an OOM kill: no shutdown handlers run."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart_gateway(self, timeout: float = 60.0) -> None:
        """Start the gateway again on its port (after kill_process("gateway"))."""
        self.start_gateway()
        self.wait_healthy(timeout)

    def stop_process(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        for name in list(self.procs):
            self.stop_process(name)


def print_logs_on_failure(stack: Stack) -> None:
    for name in ("bot", "actions", "gateway", "admin", "workshop"):
        if (stack.var_dir / f"{name}.log").exists():
            sys.stderr.write(stack.log_tail(name) + "\n")
