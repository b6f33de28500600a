"""Asterisk sandbox fixtures: one real Asterisk 22 per test session, and AMI clients to it.

``asterisk`` (session): a started :class:`AsteriskSandbox` on non-default ports with its own
run directory; its settings are ``asterisk.settings``. The root is built on first use (about a
minute, needs root and network) into the default ``asterisk_root`` and reused afterwards.
``ami``: an :class:`AmiClient` logged in to it, closed after the test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from ami.client import AmiClient, AmiError
from sandbox.instance import AsteriskSandbox
from sandbox.root import SandboxError, unavailable_reason

#: shifts every test port, so two test runs on one machine do not collide
PORT_OFFSET = int(os.environ.get("HOTLINE_TEST_PORT_OFFSET", "0"))
#: ports of the test instance: away from a developer's own instance (5038, 5060, 4573)
TEST_PORTS = {
    name: port + PORT_OFFSET
    for name, port in {
        "ami_port": 15038,
        "asterisk_sip_port": 15060,
        "fastagi_port": 14573,
        "asterisk_rtp_start": 16000,
        "asterisk_rtp_end": 16199,
    }.items()
}


@pytest.fixture(scope="session")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskSandbox]:
    from tests.conftest import make_settings, missing  # conftest imports this module

    base = tmp_path_factory.mktemp("asterisk")
    settings = make_settings(base, asterisk_run_dir=base / "run", **TEST_PORTS)
    # die_with_parent: a killed test run leaves no Asterisk holding the test ports
    sandbox = AsteriskSandbox.from_settings(settings, die_with_parent=True)
    if reason := unavailable_reason():
        missing(f"Asterisk 22 sandbox ({reason})")
    try:
        sandbox.ensure_built()
    except SandboxError as exc:
        missing(f"Asterisk 22 root at {sandbox.root} ({exc})")
    try:
        sandbox.start()
    except SandboxError as exc:
        missing(f"a running Asterisk 22 sandbox ({exc})")
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
async def ami(asterisk: AsteriskSandbox) -> AsyncIterator[AmiClient]:
    settings = asterisk.settings
    assert settings is not None
    client = AmiClient(settings.ami_host, asterisk.ami_port, asterisk.ami_username,
                       asterisk.ami_secret, timeout=settings.ami_timeout)
    try:
        await client.connect()
    except AmiError as exc:
        pytest.fail(f"cannot log in to the sandbox's AMI: {exc}\n{asterisk.log_tail()}")
    yield client
    await client.close()
