"""`make run`'s var/dev.env lets shops' servers be local (the sandbox's SMTP, a developer's
store or callback on 127.0.0.1), and keeps a developer's own choice. Milliseconds."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from devtools.bootstrap import env_value, private_destinations, set_env_value


def test_dev_env_allows_private_destinations_unless_it_says_otherwise(tmp_path: Path) -> None:
    dev_env = tmp_path / "dev.env"
    set_env_value(dev_env, "RASA_TOKEN", "t")
    private_destinations(dev_env)
    assert env_value(dev_env, "ALLOW_PRIVATE_DESTINATIONS") == "true"
    settings = Settings.from_env({"SWITCHBOARD_CREDENTIALS_KEY": "k", "RASA_TOKEN": "t",
                                  "ALLOW_PRIVATE_DESTINATIONS": "true"})
    assert settings.destinations.refusal("127.0.0.1") is None

    set_env_value(dev_env, "ALLOW_PRIVATE_DESTINATIONS", "false")  # a developer's choice
    private_destinations(dev_env)
    assert env_value(dev_env, "ALLOW_PRIVATE_DESTINATIONS") == "false"
    assert env_value(dev_env, "RASA_TOKEN") == "t"
    production = Settings.from_env({"SWITCHBOARD_CREDENTIALS_KEY": "k", "RASA_TOKEN": "t"})
    assert production.destinations.refusal("127.0.0.1") is not None  # the default
