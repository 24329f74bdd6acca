"""Benchmark: gocomm-smtp's pooled sender against aiosmtplib's ``send()`` per message.

An aiosmtpd server runs in a separate process (started and stopped here) on a free loopback
port. Each round sends ``--messages`` emails at a concurrency of ``--concurrency``:

- ``gocomm-smtp``: one ``SmtpSender`` with ``pool_size=concurrency`` (built and closed inside
  the round, so connecting and QUIT are counted);
- ``aiosmtplib.send``: one connection per message (connect, EHLO, STARTTLS, MAIL, RCPT, DATA,
  QUIT), the same concurrency, the same TLS context and local host name.

Both sides write each message with the same code (``gocomm.mime.build_envelope``, from
the same ``Email``), so both pay the same cost per message for it and the ratio measures the
transport alone: the baseline hands aiosmtplib the finished bytes and the envelope.

Rounds alternate between the two so drift hits both alike; the table shows the median
messages per second of each and the ratio. Run: ``.venv/bin/python bench/smtp.py``
(``--tls starttls`` or ``--tls none`` for one mode only).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import ssl
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import aiosmtplib
import trustme
from gocomm_smtp import SmtpSender, SmtpSettings
from rich.console import Console
from rich.table import Table

from gocomm.messages import Email
from gocomm.mime import build_envelope

HOST = "127.0.0.1"
LOCAL_HOSTNAME = "bench.localhost"
SENDER = "bench@example.com"


def _serve(port: int, tls: str, cert: str, key: str, ready: Event, stop: Event) -> None:
    """The server process: aiosmtpd accepting every message, until ``stop`` is set."""
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 2.0.0 accepted"

    kwargs: dict[str, Any] = {}
    if tls == "starttls":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        kwargs["tls_context"] = context
    # A fixed server name: aiosmtpd would otherwise call the blocking socket.getfqdn() for
    # every connection, which would slow the one-connection-per-message baseline unfairly.
    controller = Controller(
        Sink(), hostname=HOST, port=port, server_hostname="bench.localhost", **kwargs
    )
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def _at_concurrency(
    count: int, concurrency: int, send: Callable[[int], Awaitable[None]]
) -> None:
    """Send ``count`` messages with ``concurrency`` workers."""
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            await send(i)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())


def _email(i: int) -> Email:
    """The message both sides send as message number ``i``."""
    return Email(subject=f"bench {i}", text=f"message number {i}\n")


async def _pooled_round(settings: SmtpSettings, count: int, concurrency: int) -> float:
    start = time.perf_counter()
    async with SmtpSender(settings, local_hostname=LOCAL_HOSTNAME) as sender:

        async def send(i: int) -> None:
            await sender.send("bench", _email(i), f"user{i}@example.com")

        await _at_concurrency(count, concurrency, send)
    return count / (time.perf_counter() - start)


async def _baseline_round(
    port: int, tls: str, context: ssl.SSLContext, count: int, concurrency: int
) -> float:
    start = time.perf_counter()

    async def send(i: int) -> None:
        envelope = build_envelope(_email(i), (f"user{i}@example.com",), SENDER)
        await aiosmtplib.send(
            envelope.data,
            sender=envelope.sender,
            recipients=envelope.recipients,
            hostname=HOST,
            port=port,
            start_tls=tls == "starttls",
            tls_context=context if tls == "starttls" else None,
            local_hostname=LOCAL_HOSTNAME,
        )

    await _at_concurrency(count, concurrency, send)
    return count / (time.perf_counter() - start)


async def _bench(tls: str, args: argparse.Namespace, ca: trustme.CA, ca_file: Path) -> list[str]:
    cert = ca.issue_cert(HOST)
    with tempfile.TemporaryDirectory() as directory:
        cert_file, key_file = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        port = _free_port()
        spawn = multiprocessing.get_context("spawn")
        ready, stop = spawn.Event(), spawn.Event()
        server = spawn.Process(
            target=_serve, args=(port, tls, str(cert_file), str(key_file), ready, stop)
        )
        server.start()
        try:
            if not ready.wait(30):
                raise RuntimeError("the aiosmtpd server process did not start")
            settings = SmtpSettings(
                host=HOST,
                port=port,
                tls=tls,
                ca_file=ca_file if tls != "none" else None,
                pool_size=args.concurrency,
                max_messages=100,
                sender=SENDER,
            )
            context = ssl.create_default_context()
            context.load_verify_locations(cafile=str(ca_file))
            pooled: list[float] = []
            baseline: list[float] = []
            for _ in range(args.rounds):
                pooled.append(await _pooled_round(settings, args.messages, args.concurrency))
                baseline.append(
                    await _baseline_round(port, tls, context, args.messages, args.concurrency)
                )
        finally:
            stop.set()
            server.join(30)
            if server.is_alive():
                server.terminate()
                server.join()
    pooled_median, baseline_median = statistics.median(pooled), statistics.median(baseline)
    return [
        tls,
        f"{pooled_median:,.0f}",
        f"{baseline_median:,.0f}",
        f"{pooled_median / baseline_median:.1f}x",
        " ".join(f"{p:.0f}/{b:.0f}" for p, b in zip(pooled, baseline, strict=True)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages per round")
    parser.add_argument("--concurrency", type=int, default=4, help="pool size and workers")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each, alternating")
    parser.add_argument("--tls", choices=["starttls", "none", "both"], default="both")
    args = parser.parse_args()
    modes = ["starttls", "none"] if args.tls == "both" else [args.tls]
    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as directory:
        ca_file = Path(directory) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        rows = [asyncio.run(_bench(tls, args, ca, ca_file)) for tls in modes]
    table = Table(
        title=f"{args.messages} messages, concurrency {args.concurrency}, "
        f"median of {args.rounds} alternating rounds (aiosmtpd in another process)"
    )
    for column in (
        "tls",
        "gocomm-smtp msg/s",
        "aiosmtplib.send msg/s",
        "ratio",
        "each round (pooled/send)",
    ):
        table.add_column(
            column, justify="right" if "msg" in column or column == "ratio" else "left"
        )
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
