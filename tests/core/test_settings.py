"""Settings fail loudly at start-up, keep secrets out of reprs, and pick the storage the
environment asks for."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from core.settings import ROOT, BotSettings, ConfigError, ProcessSettings, Secret, Settings

SECRETS = {"SWITCHBOARD_CREDENTIALS_KEY": "k", "RASA_TOKEN": "t"}

# One malformed value for every variable whose value has a shape (all but free text).
BAD_VALUES = [
    ("DATABASE_URL", "mysql://u:p@db/shop"),
    ("DATABASE_URL", "db.example.com"),
    ("REDIS_URL", "http://redis:6379"),
    ("REDIS_URL", "redis://redis:6379/cache"),
    ("LOG_LEVEL", "loud"),
    ("GATEWAY_HOST", "http://0.0.0.0"),
    ("GATEWAY_PORT", "0"),
    ("ACTIONS_HOST", "local host"),
    ("ACTIONS_PORT", "70000"),
    ("SANDBOX_HTTP_PORT", "http"),
    ("METRICS_HOST", "http://127.0.0.1"),
    ("GATEWAY_METRICS_PORT", "70000"),
    ("ACTIONS_METRICS_PORT", "-1"),
    ("BOT_METRICS_PORT", "65536"),
    ("SANDBOX_SMTP_PORT", "-25"),
    ("SANIC_WORKERS", "0"),
    ("KNOWLEDGE_EMBED_PRECISION", "fp16"),
    ("RASA_URL", "bot:5005"),
    ("RASA_URL", "http://bot:99999"),
    ("ACTION_SERVER_URL", "ftp://actions:5055"),
    ("RASA_TIMEOUT", "soon"),
    ("RASA_TIMEOUT", "0"),
    ("ANTHROPIC_BASE_URL", "localhost:8080"),
    ("LLM_TIMEOUT", "nan"),
    ("PUBLIC_BASE_URL", "support.example.com"),
    ("TWILIO_API_URL", "api.twilio.com"),
    ("GRAPH_API_URL", "graph"),
    ("SEND_ATTEMPTS", "0"),
    ("SEND_ATTEMPTS", "many"),
    ("TRUSTED_PROXIES", "1"),
    ("TRUSTED_PROXIES", "10.0.0.5, proxy.internal"),
    ("LOG_MESSAGE_TEXT", "sometimes"),
    ("ADMIN_HOST", "https://0.0.0.0"),
    ("ADMIN_PORT", "0"),
    ("ADMIN_METRICS_PORT", "99999"),
    ("ADMIN_PUBLIC_URL", "admin.example.com"),
    ("NLG_URL", "127.0.0.1:8080/nlg"),
    ("GATEWAY_URL", "gateway:8000"),
    ("WORKSHOP_URL", "workshop:5006"),
    ("WORKSHOP_HOST", "http://127.0.0.1"),
    ("WORKSHOP_PORT", "0"),
    ("BOT_MODEL_MEMORY_MB", "0"),
    ("BOT_MODEL_MEMORY_MB", "1.5 GB"),
    ("BOT_TURN_SLOTS", "0"),
    ("BOT_TURN_SLOTS", "many"),
    ("WORKSHOP_TRAINING_SLOTS", "0"),
    ("WORKSHOP_TRAINING_SLOTS", "9"),
    ("ADMIN_URL", "ftp://127.0.0.1:8080"),
    ("SMTP_URL", "http://mail.example.com"),
    ("COOKIE_SECURE", "maybe"),
    ("ALLOW_PRIVATE_DESTINATIONS", "sometimes"),
    ("KNOWLEDGE_WARM", "later"),
    ("UPLOAD_MAX_BYTES", "12"),
    ("STRIPE_API_KEY", "pk_test_publishable"),
    ("STRIPE_API_BASE", "api.stripe.com"),
    ("STRIPE_WEBHOOK_SECRET", "whsec_one,signing-secret"),
    ("BILLING_PLANS", "/nonexistent/plans.yml"),
    ("BILLING_GRACE_DAYS", "365"),
]
FREE_TEXT = {"SWITCHBOARD_VAR_DIR", "SHOP_MODELS_DIR", "SWITCHBOARD_CREDENTIALS_KEY", "RASA_TOKEN",
             "ANTHROPIC_API_KEY", "HEALTH_TOKEN", "MAIL_FROM"}


@pytest.mark.parametrize("missing", ["SWITCHBOARD_CREDENTIALS_KEY", "RASA_TOKEN"])
def test_missing_secret_fails_and_names_the_variable(missing: str) -> None:
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env({**SECRETS, missing: "  "})


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_bad_value_is_a_config_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}="):
        Settings.from_env({**SECRETS, name: value})


def test_every_shaped_variable_has_a_bad_value_test() -> None:
    untested = {v.name for v in Settings.variables()} - FREE_TEXT - {name for name, _ in BAD_VALUES}
    assert not untested, f"add a malformed value for {sorted(untested)} to BAD_VALUES"


def test_error_messages_do_not_show_passwords() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**SECRETS, "DATABASE_URL": "mysql://shop:hunter2@db/shop"})
    assert "hunter2" not in str(error.value) and "shop:***@db" in str(error.value)


def test_several_rasa_workers_need_redis() -> None:
    with pytest.raises(ConfigError, match="SANIC_WORKERS"):
        ProcessSettings.from_env({"SANIC_WORKERS": "2"})
    assert ProcessSettings.from_env({"SANIC_WORKERS": "2", "REDIS_URL": "redis://r:6379/0"})


def test_defaults_are_the_declared_ones() -> None:
    settings = Settings.from_env(SECRETS)
    assert settings.var_dir == ROOT / "var"
    assert settings.database_url == f"sqlite+aiosqlite:///{ROOT / 'var' / 'switchboard.db'}"
    assert (settings.redis_url, settings.log_level) == (None, "INFO")
    assert settings.embed_precision == "auto"
    assert (settings.gateway_host, settings.gateway_port) == ("0.0.0.0", 8000)
    assert (settings.actions_host, settings.actions_port) == ("127.0.0.1", 5055)
    assert (settings.rasa_url, settings.action_server_url) == ("http://127.0.0.1:5005",
                                                               "http://127.0.0.1:5055")
    assert (settings.rasa_timeout, settings.llm_timeout, settings.send_attempts) == (30.0, 8.0, 4)
    assert settings.anthropic_api_key is None and settings.public_base_url is None
    for var in Settings.variables():
        if var.derive is None and not var.required:
            assert getattr(settings, var.field) == var.default, var.name


def test_values_are_typed_and_frozen() -> None:
    settings = Settings.from_env({**SECRETS, "GATEWAY_PORT": "8080", "LLM_TIMEOUT": "2.5",
                                  "LOG_LEVEL": "debug", "RASA_URL": "http://bot:5005/",
                                  "ANTHROPIC_API_KEY": "sk-ant"})
    assert settings.gateway_port == 8080 and settings.llm_timeout == 2.5
    assert settings.log_level == "DEBUG" and settings.rasa_url == "http://bot:5005"
    assert isinstance(settings.var_dir, Path) and isinstance(settings.anthropic_api_key, Secret)
    assert settings.credentials_key.reveal() == "k" and settings.rasa_token == Secret("t")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.gateway_port = 1  # type: ignore[misc]  # frozen: what this test checks


def test_blank_optional_values_are_unset() -> None:
    settings = Settings.from_env({**SECRETS, "ANTHROPIC_API_KEY": "", "REDIS_URL": " ",
                                  "SEND_ATTEMPTS": ""})
    assert settings.anthropic_api_key is None and settings.redis_url is None
    assert settings.send_attempts == 4


def test_repr_masks_secrets_and_url_passwords() -> None:
    settings = Settings.from_env({
        "SWITCHBOARD_CREDENTIALS_KEY": "fernet-key-1", "RASA_TOKEN": "rasa-token-2",
        "ANTHROPIC_API_KEY": "sk-ant-3",
        "DATABASE_URL": "postgresql://switchboard:pg-pass-4@postgres/switchboard",
        "REDIS_URL": "redis://:redis-pass-5@redis:6379/0", "HEALTH_TOKEN": "health-6",
    })
    derived = (settings.rasa_jwt_key.reveal(), settings.log_key.hex(),
               settings.widget_secret.hex(), repr(settings.log_key), repr(settings.widget_secret))
    for shown in (repr(settings), str(settings), f"{settings}", repr(ProcessSettings.from_env({
            "DATABASE_URL": "postgresql://switchboard:pg-pass-4@postgres/switchboard"})),
            repr(BotSettings.from_env({"RASA_TOKEN": "rasa-token-2", "DATABASE_URL":
                                       "postgresql://switchboard:pg-pass-4@postgres/switchboard"}))):
        for secret in ("fernet-key-1", "rasa-token-2", "sk-ant-3", "pg-pass-4", "redis-pass-5",
                       "health-6", *derived):
            assert secret not in shown
        assert "postgresql+psycopg://switchboard:***@postgres/switchboard" in shown
    assert "credentials_key=Secret('**********')" in repr(settings)
    assert "redis_url='redis://:***@redis:6379/0'" in repr(settings)


def test_secret_masks_itself_everywhere_but_reveal() -> None:
    secret = Secret("s3cr3t")
    assert repr(secret) == "Secret('**********')"
    assert str(secret) == f"{secret}" == format(secret, "") == "**********"
    assert secret.reveal() == "s3cr3t"
    assert secret == Secret("s3cr3t") and secret != Secret("other") and secret != "s3cr3t"
    assert hash(secret) == hash(Secret("s3cr3t")) and bool(secret) and not Secret("")


def test_embedded_default_is_sqlite_under_var(tmp_path: Path) -> None:
    settings = Settings.from_env({**SECRETS, "SWITCHBOARD_VAR_DIR": str(tmp_path)})
    assert settings.uses_embedded_storage
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path}/switchboard.db"
    assert settings.tracker_store_url.endswith("rasa-tracker.db")
    assert settings.redis_url is None


def test_database_url_selects_postgres_with_async_driver() -> None:
    settings = Settings.from_env({**SECRETS, "DATABASE_URL": "postgresql://u:p@db:5432/shop",
                                  "REDIS_URL": "redis://cache:6379/0"})
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/shop"
    assert settings.tracker_store_url == settings.database_url
    assert settings.redis_url == "redis://cache:6379/0"


def test_widget_secret_comes_from_the_first_credentials_key() -> None:
    one = Settings.from_env({**SECRETS, "SWITCHBOARD_CREDENTIALS_KEY": "new,old"})
    same = Settings.from_env({**SECRETS, "SWITCHBOARD_CREDENTIALS_KEY": "new"})
    other = Settings.from_env({**SECRETS, "SWITCHBOARD_CREDENTIALS_KEY": "old"})
    assert one.widget_secret == same.widget_secret != other.widget_secret
    assert len(one.widget_secret) == 32


def test_declarations() -> None:
    process, full = ProcessSettings.variables(), Settings.variables()
    assert full[: len(process)] == process, "Settings extends ProcessSettings"
    assert len({v.name for v in full}) == len(full), "one variable per field"
    assert {v.field for v in full} == {f.name for f in dataclasses.fields(Settings)}
    assert all(v.doc for v in full), "every variable says what its default means"
    assert {v.name for v in full if v.required} == {"SWITCHBOARD_CREDENTIALS_KEY", "RASA_TOKEN"}
    assert {v.name for v in full if v.secret} == {"SWITCHBOARD_CREDENTIALS_KEY", "RASA_TOKEN",
                                                  "ANTHROPIC_API_KEY", "HEALTH_TOKEN",
                                                  "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"}
    assert {v.name for v in full if v.local_default} >= {"DATABASE_URL", "RASA_URL",
                                                         "ACTION_SERVER_URL", "ACTIONS_HOST"}


def test_env_defaults_sets_declared_variables() -> None:
    """`make run` hands .env.defaults to every process (honcho -e); Rasa's endpoints.yml reads
    ACTION_ENDPOINT_URL."""
    lines = (ROOT / ".env.defaults").read_text().splitlines()
    env = {name.strip(): value.strip() for name, _, value in
           (line.partition("=") for line in lines if line.strip() and not line.startswith("#"))}
    unknown = set(env) - {var.name for var in Settings.variables()} - {"ACTION_ENDPOINT_URL"}
    assert not unknown, f".env.defaults: declare {sorted(unknown)} in core/settings.py or drop them"
    Settings.from_env({**SECRETS, **env})


def test_rasa_python_reads_process_settings() -> None:
    """bot/stores.py imports core.settings inside Rasa's Python 3.10: standard library only."""
    bot_python = ROOT / ".venv-bot" / "bin" / "python"
    if not bot_python.exists():
        pytest.skip("Rasa's environment (.venv-bot) is not installed")
    done = subprocess.run(
        [str(bot_python), "-c", "from core.settings import ProcessSettings; "
                                "print(ProcessSettings.from_env({}).log_level)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "INFO", done.stderr
