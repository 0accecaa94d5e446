"""Tracing is configured by the standard OTEL_* variables and off unless asked for."""

from __future__ import annotations

import pytest

from cdb.runtime.tracing import configure_from_env


def test_no_exporter_asked_for_means_no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert configure_from_env("cdb-test") is False
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert configure_from_env("cdb-test") is False
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert configure_from_env("cdb-test") is False
