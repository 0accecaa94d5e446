"""Settings of every cdb process: pydantic-settings with the ``CDB_`` prefix.

Where a value comes from, first match wins:

1. ``CDB_<NAME>_FILE`` — the path of a file holding the value (e.g. ``CDB_REDIS_URL_FILE``);
2. ``<secrets dir>/cdb_<name>`` — a Docker/Kubernetes style secret file; the directory is
   ``CDB_SECRETS_DIR`` or ``/run/secrets``;
3. the environment variable ``CDB_<NAME>``;
4. the default.

Secrets come before the environment so that a secret mounted by the orchestrator wins over a
stale variable. URLs (which carry passwords) are ``SecretStr``: ``repr`` and ``str`` print
``**********``; use :func:`mask_url` to show one.

Bad values raise :class:`cdb.errors.ConfigError` naming the variable, the value (masked when
secret) and the rule.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from cdb.errors import ConfigError

ENV_PREFIX = "CDB_"
DEFAULT_SECRETS_DIR = Path("/run/secrets")
SECRET_FIELDS = frozenset({"redis_url", "database_url"})
_MASK = "**********"

TradingMode = Literal["paper", "live"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

_REDIS_SCHEMES = ("redis", "rediss", "unix")
_DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Settings(BaseSettings):
    """Every setting cdb reads. Build it with :func:`load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    redis_url: SecretStr | None = Field(
        default=None, description="Redis to use; unset = start or reuse the embedded one."
    )
    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL to use; unset = start or reuse the embedded one."
    )
    namespace: str = Field(default="cdb", description="Key prefix; sandboxes never collide.")
    home: Path | None = Field(
        default=None,
        description="Directory of the embedded servers' data, logs and generated passwords "
        "(default: .cdb/ at the root of the current repository).",
    )
    topology_file: Path | None = Field(
        default=None, description="Stream topology (default: streams/topology.toml of cdb)."
    )
    trading_mode: TradingMode = Field(default="paper", description="paper (default) or live.")
    live_trading_confirmed: bool = Field(
        default=False,
        description="Must be true, in addition to trading_mode=live, before live orders go out.",
    )
    log_level: LogLevel = Field(default="INFO")
    otel_enabled: bool = Field(default=False, description="Export OpenTelemetry traces/metrics.")
    otel_endpoint: str | None = Field(
        default=None, description="OTLP endpoint; unset = the SDK's default / console."
    )
    otel_service_name: str = Field(default="cdb")

    @field_validator("redis_url", "database_url", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: Any) -> Any:
        # `CDB_REDIS_URL=` in a compose file or shell means "not configured".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_scheme(value.get_secret_value(), _REDIS_SCHEMES)
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_scheme(value.get_secret_value(), _DATABASE_SCHEMES)
        return value

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if not _NAMESPACE_RE.match(value):
            raise ValueError("1-64 characters from A-Z a-z 0-9 _ . -")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return _one_of(value, get_args(LogLevel), str.upper)

    @field_validator("trading_mode", mode="before")
    @classmethod
    def _lower_trading_mode(cls, value: Any) -> Any:
        return _one_of(value, get_args(TradingMode), str.lower)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 (signature fixed by pydantic)
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env files: what a process runs with is exactly its environment and its secrets.
        assert isinstance(init_settings, InitSettingsSource)
        assert isinstance(env_settings, EnvSettingsSource)
        return init_settings, SecretFilesSource(settings_cls), env_settings

    # Convenience views -------------------------------------------------------------------

    @property
    def uses_external_redis(self) -> bool:
        return self.redis_url is not None

    @property
    def uses_external_database(self) -> bool:
        return self.database_url is not None

    @property
    def live_trading_allowed(self) -> bool:
        """Live trading needs both the mode and the explicit confirmation."""
        return self.trading_mode == "live" and self.live_trading_confirmed

    def resolved_home(self) -> Path:
        """The embedded servers' directory: ``home`` if set, else ``.cdb`` of the repository."""
        if self.home is not None:
            return self.home.expanduser().resolve()
        return (find_repository_root(Path.cwd()) / ".cdb").resolve()


class SecretFilesSource(PydanticBaseSettingsSource):
    """Values read from ``CDB_<NAME>_FILE`` files, then from ``<secrets dir>/cdb_<name>``."""

    def get_field_value(
        self,
        field: FieldInfo,  # noqa: ARG002 (abstract signature)
        field_name: str,
    ) -> tuple[Any, str, bool]:
        environ = os.environ
        env_name = f"{ENV_PREFIX}{field_name}".upper()
        pointer = _env_lookup(environ, f"{env_name}_FILE")
        if pointer:
            path = Path(pointer).expanduser()
            try:
                return _read_secret(path), field_name, False
            except OSError as exc:
                raise ConfigError(
                    f"{env_name}_FILE={pointer!r}: cannot read the file ({exc.strerror})"
                ) from None
        secrets_dir = Path(_env_lookup(environ, "CDB_SECRETS_DIR") or DEFAULT_SECRETS_DIR)
        candidate = secrets_dir / env_name.lower()
        try:
            present = candidate.is_file()
        except OSError:
            present = False  # an unreadable secrets dir holds nothing for us
        if not present:
            return None, field_name, False
        try:
            return _read_secret(candidate), field_name, False
        except OSError as exc:
            raise ConfigError(f"{env_name}: cannot read {candidate} ({exc.strerror})") from None

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


def load_settings(**overrides: Any) -> Settings:
    """Read the settings (secret files, then environment), or raise :class:`ConfigError`.

    ``overrides`` (field name -> value) win over every other source; the CLI passes options
    such as ``--namespace`` this way.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise _config_error(exc) from None


def mask_url(url: str | SecretStr | None) -> str:
    """The URL with its password replaced by ``***`` (whole value masked if unparsable)."""
    if url is None:
        return ""
    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    try:
        parts = urlsplit(raw)
        if parts.password is None:
            return raw
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
        user = parts.username or ""
        netloc = f"{user}:***@{host}{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return _MASK


def find_repository_root(start: Path) -> Path:
    """Nearest directory at or above ``start`` holding ``.git`` or ``pyproject.toml``."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if (directory / ".git").exists() or (directory / "pyproject.toml").is_file():
            return directory
    return start


def _check_scheme(url: str, schemes: tuple[str, ...]) -> None:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in schemes:
        raise ValueError("must start with " + " or ".join(f"{s}://" for s in schemes))


def _one_of(value: Any, allowed: tuple[str, ...], normalise: Callable[[str], str]) -> Any:
    """Case-insensitive choice; the error quotes what the user wrote, not the normalised form."""
    if not isinstance(value, str):
        return value
    candidate = normalise(value.strip())
    if candidate not in allowed:
        raise ValueError("must be one of " + ", ".join(allowed) + " (any case)")
    return candidate


def _read_secret(path: Path) -> str:
    # Secret files conventionally end with a newline that is not part of the value.
    return path.read_text(encoding="utf-8").strip()


def _env_lookup(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is not None:
        return value
    upper = name.upper()
    for key, candidate in environ.items():
        if key.upper() == upper:
            return candidate
    return None


def _config_error(exc: ValidationError) -> ConfigError:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "settings"
        value = error.get("input")
        shown = mask_url(str(value)) if field in SECRET_FIELDS else repr(value)
        if field in SECRET_FIELDS and shown == str(value) and "@" in shown:
            shown = _MASK  # never echo something that might still hold a credential
        rule = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{ENV_PREFIX}{field.upper()}={shown}: {rule}")
    return ConfigError("bad setting: " + "; ".join(problems))
