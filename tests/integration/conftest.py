"""Fixtures of the integration tests beyond the shared ones (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.helpers.fake_ami import FakeAsterisk


@pytest.fixture
async def fake() -> AsyncIterator[FakeAsterisk]:
    """The scripted AMI server of the dialer and scheduler tests, on a loopback port."""
    server = FakeAsterisk()
    await server.start()
    yield server
    await server.stop()
