"""Settings: sources in order (secret file, secrets dir, env, default), masking, typed errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cdb.config import Settings, load_settings, mask_url
from cdb.errors import ConfigError

PASSWORD = "hunter2-not-for-logs"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CDB_* variable of the caller leaks in; an empty secrets dir replaces /run/secrets."""
    for name in list(os.environ):
        if name.upper().startswith("CDB_"):
            monkeypatch.delenv(name)
    secrets_dir = tmp_path / "run-secrets"
    secrets_dir.mkdir()
    monkeypatch.setenv("CDB_SECRETS_DIR", str(secrets_dir))
    return secrets_dir


def test_defaults_are_paper_trading_on_embedded_servers() -> None:
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.database_url is None
    assert settings.namespace == "cdb"
    assert settings.trading_mode == "paper"
    assert not settings.live_trading_allowed
    assert settings.log_level == "INFO"
    assert not settings.otel_enabled


def test_empty_url_means_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDB_REDIS_URL", "")
    assert load_settings().redis_url is None


def test_environment_sets_values_case_insensitively(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDB_REDIS_URL", f"redis://:{PASSWORD}@10.0.0.1:6379/0")
    monkeypatch.setenv("CDB_NAMESPACE", "sandbox-1")
    monkeypatch.setenv("CDB_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() == f"redis://:{PASSWORD}@10.0.0.1:6379/0"
    assert settings.namespace == "sandbox-1"
    assert settings.log_level == "DEBUG"
    assert settings.uses_external_redis
    assert not settings.uses_external_database


def test_file_named_by_FILE_variable_wins_over_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "redis_url"
    secret.write_text(f"redis://:{PASSWORD}@from-file:6379/0\n")
    monkeypatch.setenv("CDB_REDIS_URL_FILE", str(secret))
    monkeypatch.setenv("CDB_REDIS_URL", "redis://:other@from-env:6379/0")
    settings = load_settings()
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() == f"redis://:{PASSWORD}@from-file:6379/0"


def test_secrets_dir_file_wins_over_environment(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    (clean_environment / "cdb_database_url").write_text(
        f"postgresql://cdb:{PASSWORD}@db:5432/cdb\n"
    )
    monkeypatch.setenv("CDB_DATABASE_URL", "postgresql://cdb:other@env:5432/cdb")
    settings = load_settings()
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == f"postgresql://cdb:{PASSWORD}@db:5432/cdb"


def test_secrets_never_appear_in_repr_str_or_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDB_REDIS_URL", f"redis://:{PASSWORD}@h:6379/0")
    monkeypatch.setenv("CDB_DATABASE_URL", f"postgresql://cdb:{PASSWORD}@h:5432/cdb")
    settings = load_settings()
    for shown in (repr(settings), str(settings), settings.model_dump_json(), f"{settings!s}"):
        assert PASSWORD not in shown
    assert PASSWORD not in repr(settings.redis_url)


def test_missing_secret_file_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CDB_DATABASE_URL_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="CDB_DATABASE_URL_FILE") as caught:
        load_settings()
    assert "absent" in str(caught.value)


def test_bad_url_error_names_setting_and_masks_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDB_REDIS_URL", f"http://user:{PASSWORD}@h:6379")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "CDB_REDIS_URL=http://user:***@h:6379" in message
    assert "redis://" in message  # the rule
    assert PASSWORD not in message


def test_bad_choices_name_setting_value_and_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDB_LOG_LEVEL", "loud")
    monkeypatch.setenv("CDB_TRADING_MODE", "yolo")
    monkeypatch.setenv("CDB_NAMESPACE", "has space")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "CDB_LOG_LEVEL='loud': must be one of DEBUG" in message
    assert "CDB_TRADING_MODE='yolo': must be one of paper, live" in message
    assert "CDB_NAMESPACE='has space'" in message


def test_live_trading_needs_mode_and_explicit_confirmation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDB_TRADING_MODE", "LIVE")
    assert load_settings().trading_mode == "live"
    assert not load_settings().live_trading_allowed
    monkeypatch.setenv("CDB_LIVE_TRADING_CONFIRMED", "true")
    assert load_settings().live_trading_allowed


def test_overrides_win_and_none_overrides_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDB_NAMESPACE", "from-env")
    assert load_settings(namespace="from-cli").namespace == "from-cli"
    assert load_settings(namespace=None).namespace == "from-env"


def test_home_defaults_to_dot_cdb_at_repository_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(repo / "src" / "deep")
    assert load_settings().resolved_home() == (repo / ".cdb").resolve()
    monkeypatch.setenv("CDB_HOME", str(tmp_path / "elsewhere"))
    assert load_settings().resolved_home() == (tmp_path / "elsewhere").resolve()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{PASSWORD}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (f"postgresql://cdb:{PASSWORD}@db:5432/cdb", "postgresql://cdb:***@db:5432/cdb"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (f"redis://u:{PASSWORD}@[::1]:6379", "redis://u:***@[::1]:6379"),
    ],
)
def test_mask_url_hides_only_the_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.namespace = "x"  # type: ignore[misc]
