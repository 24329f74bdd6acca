"""Sends per second and client CPU per 1,000 sends of gocomm's HTTP email vendors, each against
its own fake, and SES against boto3's ``sesv2`` client on the same fake, in one run.

Every installed email vendor whose package ships a fake (``gocomm_<name>.testing``: a
:class:`~gocomm.testing.httpserver.FakeVendorServer` built with no arguments) is found through
the plugin registry: ``ses``, ``sendgrid``, ``mailgun``, ``postmark`` and ``resend`` here. The
fakes run in one separate process, each on its own port, and do their real
work: FakeSes verifies every SigV4 signature, FakeSendGrid the bearer key and the body,
FakeMailgun basic auth and the multipart form. Per vendor, in alternating rounds of ``--sends``
sends of a small text Email to one recipient each:

- ``gocomm``: the vendor as shipped, ``--concurrency`` sends in flight over its one keep-alive
  aiohttp session;
- ``boto3`` (SES only): ``sesv2.send_email`` from ``--concurrency`` threads sharing one client
  (botocore's pool sized to match), boto3's way to send concurrently, signed the same way.

Client CPU is ``resource.getrusage(RUSAGE_SELF)`` of this process (every thread) around the
sends only; server CPU the fakes' process's own, over the same sends. The table shows medians
over the rounds: sends/s, client and server CPU in ms per 1,000 sends, and the connections the
client opened.

    .venv/bin/python bench/http_email.py [--sends 2000] [--rounds 3] [--concurrency 32]

The boto3 peer comes with the core's ``bench`` extra, which ``scripts/install`` installs.
A benchmark prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import multiprocessing
import resource
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from gocomm.messages import Email
from gocomm.plugins import VendorRegistry, load_registry
from gocomm.testing.fakes import configuration_entry
from gocomm.testing.httpserver import FakeVendorServer

SENDER = "Shop <shop@example.com>"
MESSAGE = Email(subject="Your receipt", text="Thank you for your order.", sender=SENDER)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _fake_class(registry: VendorRegistry, name: str) -> type[FakeVendorServer] | None:
    """The fake server class ``gocomm_<name>.testing`` defines, if any."""
    try:
        module = importlib.import_module(f"gocomm_{name}.testing")
    except ImportError:
        return None
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, FakeVendorServer) and cls.__module__ == module.__name__:
            return cls
    return None


def email_vendors() -> list[str]:
    """The installed HTTP email vendors that ship a fake, by registered name."""
    registry = load_registry()
    return [
        name
        for name in registry.names()
        if "email" in registry.get(name).channels and _fake_class(registry, name) is not None
    ]


# --------------------------------------------------------------------------------------------
# The fakes' process
# --------------------------------------------------------------------------------------------


def _serve(conn: Connection, names: list[str]) -> None:
    """Serve each vendor's fake; send {name: configuration entry}; on "stats" reply (CPU
    seconds, {name: connections}), forgetting what the fakes recorded (memory stays flat)."""

    async def main() -> None:
        registry = load_registry()
        fakes: dict[str, FakeVendorServer] = {}
        entries: dict[str, dict[str, Any]] = {}
        async with contextlib.AsyncExitStack() as stack:
            for name in names:
                fake_class = _fake_class(registry, name)
                assert fake_class is not None
                fake = await stack.enter_async_context(fake_class().serving())
                fakes[name] = fake
                settings = fake.settings()  # type: ignore[attr-defined]
                entries[name] = configuration_entry(registry.get(name), settings)
            conn.send(entries)
            loop = asyncio.get_running_loop()
            while (await loop.run_in_executor(None, conn.recv)) == "stats":
                for fake in fakes.values():
                    fake.deliveries.clear()
                    for attribute in ("accepted", "requests"):
                        recorded = getattr(fake, attribute, None)
                        if isinstance(recorded, list):
                            recorded.clear()
                    assert fake.server is not None
                    fake.server.requests.clear()
                conn.send((_cpu(), {n: f.connections for n, f in fakes.items()}))

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# The clients: each runs `sends` sends after a warm-up, returns (seconds, client CPU seconds)
# --------------------------------------------------------------------------------------------


Send = Callable[[int], Awaitable[object]]


def _to(i: int) -> str:
    return f"user{i}@example.com"


async def _in_flight(send: Send, sends: int, concurrency: int) -> None:
    numbers = iter(range(sends))

    async def worker() -> None:
        for i in numbers:
            await send(i)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())


def gocomm_client(
    name: str, entry: dict[str, Any], sends: int, concurrency: int
) -> tuple[float, float]:
    spec = load_registry().get(name)
    values = {k: v for k, v in entry.items() if k != "plugin"}
    settings = spec.settings.model_validate(values)

    async def run() -> tuple[float, float]:
        async with spec.factory(settings) as vendor:  # type: ignore[attr-defined]

            async def send(i: int) -> object:
                return await vendor.send("receipt", MESSAGE, _to(i))

            await _in_flight(send, min(200, sends), concurrency)  # warm-up: connections, caches
            cpu, started = _cpu(), time.perf_counter()
            await _in_flight(send, sends, concurrency)
            return time.perf_counter() - started, _cpu() - cpu

    return asyncio.run(run())


def boto3_client(entry: dict[str, Any], sends: int, concurrency: int) -> tuple[float, float]:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "sesv2",
        endpoint_url=entry["endpoint"],
        region_name=entry["region"],
        aws_access_key_id=entry["access_key_id"],
        aws_secret_access_key=entry["secret_access_key"],
        config=Config(max_pool_connections=concurrency, retries={"max_attempts": 1}),
    )

    def send(i: int) -> None:
        answer = client.send_email(
            FromEmailAddress=SENDER,
            Destination={"ToAddresses": [_to(i)]},
            Content={
                "Simple": {
                    "Subject": {"Data": MESSAGE.subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": MESSAGE.text or "", "Charset": "UTF-8"}},
                }
            },
        )
        assert answer["MessageId"], answer

    def in_threads(count: int) -> None:
        with ThreadPoolExecutor(concurrency) as pool:
            for result in pool.map(send, range(count)):
                assert result is None

    in_threads(min(200, sends))  # warm-up: connections, the service model, caches
    cpu, started = _cpu(), time.perf_counter()
    in_threads(sends)
    seconds, used = time.perf_counter() - started, _cpu() - cpu
    client.close()
    return seconds, used


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def _stats(conn: Connection) -> tuple[float, dict[str, int]]:
    conn.send("stats")
    cpu, connections = conn.recv()
    return float(cpu), dict(connections)


def run(conn: Connection, entries: dict[str, dict[str, Any]], options: argparse.Namespace) -> None:
    sends, concurrency = options.sends, options.concurrency
    print(
        f"{sends} sends per round, {options.rounds} alternating rounds, {concurrency} in flight; "
        "medians over the rounds; CPU in ms per 1,000 sends"
    )
    print(
        f"{'vendor':<10} {'client':<16} {'sends/s':>8} {'client CPU':>11} {'server CPU':>11} "
        f"{'conns':>6}"
    )
    ratios: list[str] = []
    for name, entry in entries.items():
        kinds: dict[str, Callable[[], tuple[float, float]]] = {
            "gocomm": lambda n=name, e=entry: gocomm_client(n, e, sends, concurrency)
        }
        if name == "ses" and not options.no_boto3:
            kinds["boto3 (threads)"] = lambda e=entry: boto3_client(e, sends, concurrency)
        rows: dict[str, list[tuple[float, float, float, int]]] = {kind: [] for kind in kinds}
        for _ in range(options.rounds):
            for kind, client in kinds.items():
                server_cpu, connections = _stats(conn)
                seconds, cpu = client()
                server_after, connections_after = _stats(conn)
                opened = connections_after[name] - connections[name]
                rows[kind].append((seconds, cpu, server_after - server_cpu, opened))
        cpu_per_1000: dict[str, float] = {}
        for kind, runs in rows.items():
            seconds = statistics.median(r[0] for r in runs)
            cpu_per_1000[kind] = statistics.median(r[1] for r in runs) / sends * 1e6
            server = statistics.median(r[2] for r in runs) / sends * 1e6
            opened = statistics.median(r[3] for r in runs)
            print(
                f"{name:<10} {kind:<16} {sends / seconds:>8.0f} {cpu_per_1000[kind]:>11.0f} "
                f"{server:>11.0f} {opened:>6.0f}"
            )
        if len(cpu_per_1000) == 2:
            ratio = cpu_per_1000["gocomm"] / cpu_per_1000["boto3 (threads)"]
            ratios.append(f"{name}: gocomm / boto3 client CPU per send = {ratio:.2f}")
    for line in ratios:
        print(line)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-boto3", action="store_true", help="leave out the boto3 peer")
    parser.add_argument(
        "--vendors",
        type=lambda text: text.split(","),
        default=None,
        help="comma-separated vendor names (default: every email vendor with a fake)",
    )
    options = parser.parse_args(argv)
    names = options.vendors or email_vendors()
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server: Any = context.Process(target=_serve, args=(child, names), daemon=True)
    server.start()
    try:
        run(parent, parent.recv(), options)
    finally:
        parent.send("stop")
        server.join(timeout=5)
        if server.is_alive():
            server.terminate()


if __name__ == "__main__":
    main()
