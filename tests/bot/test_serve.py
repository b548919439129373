"""Rasa's launcher: the HTTP API key comes from RASA_TOKEN, never from the command line."""

from __future__ import annotations

import pytest

from bot.serve import rasa_argv
from core.settings import BotSettings, ConfigError, Settings

ARGS = ["run", "--enable-api", "-i", "127.0.0.1", "-p", "5005", "--model", "models/m.tar.gz"]


def test_the_key_is_added_from_the_environment() -> None:
    settings = BotSettings.from_env({"RASA_TOKEN": "rasa-token-1"})
    argv = rasa_argv(ARGS, settings)
    assert argv[:len(ARGS) + 1] == ["rasa", *ARGS]
    assert argv[argv.index("--jwt-secret") + 1] == settings.rasa_jwt_key.reveal()
    assert "rasa-token-1" not in argv  # the derived key, not the token itself


def test_gateway_and_rasa_derive_one_key() -> None:
    bot = BotSettings.from_env({"RASA_TOKEN": "t"})
    gateway = Settings.from_env({"RASA_TOKEN": "t", "SWITCHBOARD_CREDENTIALS_KEY": "k"})
    other = BotSettings.from_env({"RASA_TOKEN": "u"})
    assert bot.rasa_jwt_key == gateway.rasa_jwt_key != other.rasa_jwt_key
    assert len(bot.rasa_jwt_key.reveal()) == 64  # PyJWT wants 32 bytes or more for HS256


@pytest.mark.parametrize("flag", ["--auth-token", "--jwt-secret", "--jwt-secret=x"])
def test_a_secret_flag_is_refused(flag: str) -> None:
    with pytest.raises(ConfigError, match="command line"):
        rasa_argv([*ARGS, flag, "x"], BotSettings.from_env({"RASA_TOKEN": "t"}))


def test_missing_token_stops_the_launcher() -> None:
    with pytest.raises(ConfigError, match="RASA_TOKEN"):
        BotSettings.from_env({})
