"""Shared fixtures: captured telemetry for span assertions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tta_dev_primitives.testing import CapturedTelemetry, capture_telemetry


@pytest.fixture
def telemetry() -> Iterator[CapturedTelemetry]:
    """Tracer/meter providers that record into memory, for span and metric assertions."""
    with capture_telemetry() as captured:
        yield captured
