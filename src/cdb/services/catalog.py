"""The consuming services by name, built with parameters read from an environment mapping."""

from __future__ import annotations

from collections.abc import Mapping

from cdb.domain.services.execution import ExecutionParams
from cdb.domain.services.portfolio import PortfolioParams
from cdb.domain.services.risk import RiskParams
from cdb.domain.services.signal import SignalParams
from cdb.errors import ConfigError
from cdb.services.base import Service
from cdb.services.execution import ExecutionService
from cdb.services.portfolio import PortfolioService
from cdb.services.risk import RiskService
from cdb.services.signal import SignalService

CONSUMING = ("signal", "risk", "execution", "portfolio")


def build(name: str, env: Mapping[str, str]) -> Service:
    """The service ``name`` with its parameters from ``env`` (ConfigError names bad values)."""
    if name == "signal":
        return SignalService(SignalParams.from_env(env))
    if name == "risk":
        return RiskService(RiskParams.from_env(env))
    if name == "execution":
        return ExecutionService(ExecutionParams.from_env(env))
    if name == "portfolio":
        return PortfolioService(PortfolioParams.from_env(env))
    raise ConfigError(f"service {name!r}: must be one of {', '.join(CONSUMING)}")


def build_all(env: Mapping[str, str]) -> list[Service]:
    return [build(name, env) for name in CONSUMING]
