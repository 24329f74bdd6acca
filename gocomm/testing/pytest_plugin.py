"""The gocomm pytest plugin (entry point ``pytest11``): fixtures for applications that send
with gocomm.

``gocomm_container``
    A :class:`~gocomm.containers.Container` built from ``gocomm_settings`` whose channels'
    vendors are all one :class:`~gocomm.testing.MemorySender`, ``gocomm_outbox``. With the
    default settings there is no other stage, so nothing needs an event loop to tear down.
``gocomm_outbox``
    That :class:`~gocomm.testing.MemorySender`: assert on ``gocomm_outbox.sent``. It validates
    every send as a vendor of its channel does (``channel="both"``: an Email as email, template
    parameters as SMS), so a bad number raises ``InvalidRecipient`` here too.
``gocomm_settings``
    What the container is built from: both channels, the ``memory`` vendor, no other stage.
    Override the fixture (returning :class:`~gocomm.config.Settings` or a plain mapping) to put
    retry, rate limit or failover stages around the outbox. A channel these settings leave out
    is not configured: resolving its sender raises ``ConfigError``, as it does in production.

Nothing is autouse, and gocomm is imported only inside the fixtures: pytest loads this module in
every run of every project that has gocomm installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from gocomm.config import Settings
    from gocomm.testing import MemorySender

__all__ = ["gocomm_container", "gocomm_outbox", "gocomm_settings"]


@pytest.fixture
def gocomm_settings() -> Settings:
    """Both channels through the ``memory`` vendor, with no retry, rate limit or failover."""
    from gocomm.config import Settings

    return Settings.from_mapping(
        {"email": {"vendors": [{"plugin": "memory"}]}, "sms": {"vendors": [{"plugin": "memory"}]}},
        source="the gocomm_settings fixture",
    )


@pytest.fixture
def gocomm_outbox() -> MemorySender:
    """The :class:`~gocomm.testing.MemorySender` every channel of ``gocomm_container`` sends to."""
    from gocomm.testing import MemorySender

    return MemorySender(name="memory", channel="both")


@pytest.fixture
def gocomm_container(gocomm_settings: Any, gocomm_outbox: MemorySender) -> Iterator[Any]:
    """A container whose channels send to ``gocomm_outbox``, through ``gocomm_settings``' stages.

    Resolve a sender with ``await gocomm_container.sms.sender()``; override more with
    ``with gocomm_container.sms.vendors.override([...])`` before the first resolve.
    """
    from contextlib import ExitStack

    from gocomm.channels import CHANNELS
    from gocomm.containers import build_container

    container = build_container(gocomm_settings)
    settings = container.settings()
    with ExitStack() as overrides:
        for name in CHANNELS:
            # Only configured channels: one the settings leave out raises ConfigError when
            # resolved, as the production container does.
            if settings.channel(name) is not None:
                overrides.enter_context(getattr(container, name).vendors.override([gocomm_outbox]))
        try:
            yield container
        finally:
            _shut_down(container)


def _shut_down(container: Any) -> None:
    """Close what the test left open, on a private loop only when something is open.

    A synchronous teardown has no running loop; the test's own loop may already be closed (and
    has then finalized the resources' generators), so a short-lived loop of our own runs the
    closing and is closed again. It is never made the thread's current loop.
    """
    import asyncio

    open_resources = [
        resource
        for resource in (
            container.email.failover,
            container.email.vendors,
            container.sms.failover,
            container.sms.vendors,
            container.redis,
        )
        if resource.initialized
    ]
    if not open_resources:
        container.reset_singletons()
        return
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(container.shutdown_resources())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
