"""Settings fail loudly at start-up and pick the storage the environment asks for."""

from __future__ import annotations

import pytest

from core.settings import ConfigError, Settings

SECRETS = {"SWITCHBOARD_CREDENTIALS_KEY": "k", "RASA_TOKEN": "t"}


@pytest.mark.parametrize("missing", ["SWITCHBOARD_CREDENTIALS_KEY", "RASA_TOKEN"])
def test_missing_secret_fails_and_names_the_variable(missing: str) -> None:
    env = {**SECRETS, missing: "  "}
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env(env)


def test_embedded_default_is_sqlite_under_var(tmp_path: object) -> None:
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


def test_bad_timeout_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="RASA_TIMEOUT"):
        Settings.from_env({**SECRETS, "RASA_TIMEOUT": "soon"})
