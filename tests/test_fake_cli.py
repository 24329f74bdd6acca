"""``gocomm fake NAME``: a vendor's fake server for local development, run as a user runs it
(a real process, stopped with Ctrl-C), found through the vendor's plugin, needing no pytest."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import pytest
from pydantic import SecretStr

from gocomm.config import load_settings
from gocomm.containers import build_container
from gocomm.errors import CommError, ConfigError
from gocomm.messages import Email
from gocomm.plugins import VendorRegistry, VendorSettings, VendorSpec, hookimpl, load_registry
from gocomm.testing import MemorySender
from gocomm.testing.fakes import configuration_entry, environment, load_fake
from gocomm.testing.httpserver import FakeVendorServer, HttpRequest, HttpResponse

# Run the command with pytest made unimportable: the fakes must not need it.
WITHOUT_PYTEST = "import sys; sys.modules['pytest'] = None; from gocomm.cli import main; main()"

# What a send needs beyond what the fake prints: Twilio sends a template's body text, an
# email needs a From.
EXTRA_SETTINGS: dict[str, dict[str, Any]] = {
    "twilio": {"templates": {"login": "Your code is {code}"}},
}
EMAIL_EXTRA = {"sender": "shop@example.com"}

# One send per channel: (biz, args, recipient, marker).
SENDS: dict[str, tuple[str, Any, str, str]] = {
    "sms": ("login", {"code": "4321"}, "+8613800138000", "4321"),
    "email": ("welcome", Email(subject="Hi 4321", text="Hello"), "ada@example.com", "4321"),
}
OTHER_RECIPIENT = {"sms": "+8613900139000", "email": "bob@example.com"}


async def send_through_the_stack(variables: dict[str, str], channel: str, to: str) -> None:
    """One send through the whole stack that ``variables`` (GOCOMM_... only) configure."""
    container = build_container(load_settings(environ=variables))
    try:
        sender = await getattr(container, channel).sender()
        biz, args, _, _ = SENDS[channel]
        await sender.send(biz, args, to)
    finally:
        await container.shutdown_resources()


@dataclass
class Lines:
    """A process's output lines, read by a thread so that waiting for one can time out."""

    pending: queue.Queue[str | None]

    @classmethod
    def reading(cls, stream: IO[str]) -> Lines:
        lines = cls(queue.Queue())

        def pump() -> None:
            for line in stream:
                lines.pending.put(line.rstrip("\n"))
            lines.pending.put(None)

        threading.Thread(target=pump, daemon=True).start()
        return lines

    def until(self, prefix: str, timeout: float = 30) -> list[str]:
        seen = []
        while True:
            line = self.pending.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"the output ended before {prefix!r}: {seen}")
            seen.append(line)
            if line.startswith(prefix):
                return seen


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOCOMM_")}
    env.update(COLUMNS="200", NO_COLOR="1", TERM="dumb", PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def fake_process(request: pytest.FixtureRequest, clean_env: dict[str, str]) -> Iterator[Any]:
    """Starts ``gocomm fake ARGS...`` (the test's parameter) and always stops it."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", WITHOUT_PYTEST, "fake", *args],
            env=clean_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def vendors_with_a_fake() -> list[str]:
    registry = load_registry()
    return [name for name in registry.names() if registry.get(name).fake is not None]


def test_the_http_vendors_ship_fakes() -> None:
    assert {"aliyun", "tencentcloud", "twilio", "ses", "sendgrid", "mailgun"} <= set(
        vendors_with_a_fake()
    )


@pytest.mark.parametrize("vendor", vendors_with_a_fake())
def test_fake_serves_prints_its_configuration_and_logs_each_request(
    vendor: str, fake_process: Any
) -> None:
    port = free_port()
    process = fake_process(vendor, "--port", str(port))
    assert process.stdout is not None and process.stderr is not None
    printed = Lines.reading(process.stdout).until("export GOCOMM_")
    assert printed[0].startswith(f"fake {vendor} serving on http://127.0.0.1:{port} ")
    assert f"  - plugin: {vendor}" in printed
    name, _, value = shlex.split(printed[-1].removeprefix("export "))[0].partition("=")
    (entry,) = json.loads(value)
    assert entry["endpoint"] == f"http://127.0.0.1:{port}"
    channel = name.removeprefix("GOCOMM_").removesuffix("__VENDORS").lower()
    entry.update(EXTRA_SETTINGS.get(vendor, EMAIL_EXTRA if channel == "email" else {}))

    # The printed variable points a configuration at the fake: the whole stack sends to it.
    _, _, recipient, marker = SENDS[channel]
    asyncio.run(send_through_the_stack({name: json.dumps([entry])}, channel, recipient))
    # A request the fake refuses (wrong credentials) is logged too, as refused.
    fields = load_registry().get(vendor).settings.model_fields
    secret = next(  # the credential the fake checks: a secret of the vendor's settings
        k for k in entry if k in fields and fields[k].annotation in (SecretStr, SecretStr | None)
    )
    wrong = {**entry, secret: "not-the-fakes-secret"}
    other = OTHER_RECIPIENT[channel]
    with pytest.raises(CommError):
        asyncio.run(send_through_the_stack({name: json.dumps([wrong])}, channel, other))

    process.send_signal(signal.SIGINT)
    _, log = process.communicate(timeout=20)
    assert process.returncode == 0, log
    delivered = [line for line in log.splitlines() if "delivered to" in line]
    assert len(delivered) == 1, log
    assert f"delivered to {recipient}: " in delivered[0] and marker in delivered[0]
    assert "nothing delivered" in log and other not in log
    assert f"fake {vendor} stopped" in log


def test_port_zero_picks_a_free_one(fake_process: Any) -> None:
    process = fake_process("aliyun")
    assert process.stdout is not None
    first = Lines.reading(process.stdout).until("fake aliyun serving on")[-1]
    url = first.split()[4]
    assert url.startswith("http://127.0.0.1:") and int(url.rsplit(":", 1)[1]) > 0


def test_a_taken_port_and_a_vendor_without_fake_exit_2(clean_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "gocomm", "fake", "aliyun", "--port", str(port)],
            env=clean_env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert f"cannot serve on 127.0.0.1:{port}" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "gocomm", "fake", "console"],
        env=clean_env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "vendor 'console' ships no fake server; vendors with one: aliyun" in run.stderr


# -- discovery is generic: an email vendor of a third party plugs in the same way ------------


class InboxSettings(VendorSettings):
    api_key: SecretStr
    endpoint: str


@dataclass
class FakeInbox(FakeVendorServer):
    async def handle(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"id": "1"})

    def settings(self, **overrides: Any) -> InboxSettings:
        return InboxSettings(api_key=SecretStr("inbox-test-key"), endpoint=self.url)


class InboxPlugin:
    @hookimpl
    def gocomm_register_vendors(self, registry: VendorRegistry) -> None:
        registry.add(
            VendorSpec(
                "inbox",
                {"email"},
                InboxSettings,
                lambda settings: MemorySender(),
                fake=f"{__name__}:FakeInbox",
            )
        )


async def test_a_third_party_email_fake_is_found_through_its_spec() -> None:
    assert sys.modules[__name__].FakeInbox is FakeInbox  # importable by its path
    registry = load_registry(entry_points=False, plugins=[InboxPlugin()])
    spec, fake = load_fake(registry, "inbox")
    assert isinstance(fake, FakeInbox)
    async with fake.serving():
        entry = configuration_entry(spec, fake.settings())
        assert entry == {"plugin": "inbox", "api_key": "inbox-test-key", "endpoint": fake.url}
        assert environment(spec, entry) == {"GOCOMM_EMAIL__VENDORS": json.dumps([entry])}


def test_a_bad_fake_path_is_refused() -> None:
    with pytest.raises(ConfigError, match="'module:Class'"):
        VendorRegistry().add(
            VendorSpec("acme", {"sms"}, VendorSettings, lambda s: MemorySender(), fake="nope")
        )
    registry = VendorRegistry()
    registry.add(
        VendorSpec("acme", {"sms"}, VendorSettings, lambda s: MemorySender(), fake="no_such:Fake")
    )
    with pytest.raises(ConfigError, match="cannot be loaded"):
        load_fake(registry, "acme")
