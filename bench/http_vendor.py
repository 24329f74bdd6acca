"""Throughput of the Tencent Cloud vendor: its one reused client against a new client per send.

A local SendSms server runs in a separate process (so its CPU is not the sender's) and answers
every request with Tencent Cloud's success shape. Two senders go through the same vendor code,
TC3 signing and answer parsing included:

- ``reused``: ``TencentCloudSms`` as shipped, one keep-alive ``httpx.AsyncClient`` per vendor;
- ``per-send``: the same vendor, but every request builds (and closes) a new
  ``httpx.AsyncClient``, so each send pays for the client and a new TCP connection.

Each client kind makes ``--sends`` sends in all, in ``--rounds`` rounds that alternate between
the two kinds in one run, ``--concurrency`` sends in flight. The table shows the median over the
rounds of the throughput and time per send, and the connections the server accepted per round.

    .venv/bin/python bench/http_vendor.py [--sends 2000] [--rounds 5] [--concurrency 10]

A benchmark prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

import httpx
from gocomm_tencentcloud import TencentCloudSettings, TencentCloudSms

from gocomm.httpvendor import build_client, transport_errors
from gocomm.testing.httpserver import HttpRequest, HttpResponse, LocalHttpServer


class PerSendClientTencent(TencentCloudSms):
    """The Tencent Cloud vendor with a new ``httpx.AsyncClient`` for every request."""

    async def post(
        self, url: str, *, content: bytes, headers: Mapping[str, str], numbers: Sequence[str]
    ) -> httpx.Response:
        client = build_client(
            self.endpoint,
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
        )
        async with client:
            with transport_errors(self.name, unsent=numbers):
                return await client.post(url, content=content, headers=dict(headers))


def _serve(conn: Connection) -> None:
    """The server process: answer SendSms with success; GET /stats gives connection counts."""

    async def main() -> None:
        server: LocalHttpServer

        async def handle(request: HttpRequest) -> HttpResponse:
            if request.method == "GET":
                return HttpResponse.json({"connections": server.connections})
            server.requests.clear()  # keep memory flat over many requests
            numbers = json.loads(request.body)["PhoneNumberSet"]
            statuses = [
                {"SerialNo": f"s-{i}", "PhoneNumber": n, "Code": "Ok", "Message": "send success"}
                for i, n in enumerate(numbers)
            ]
            return HttpResponse.json({"Response": {"SendStatusSet": statuses, "RequestId": "r"}})

        server = LocalHttpServer(handle)
        async with server:
            conn.send(server.url)
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop

    asyncio.run(main())


async def _connections(url: str) -> int:
    async with httpx.AsyncClient() as client:
        return int((await client.get(f"{url}/stats")).json()["connections"])


async def _round(vendor: TencentCloudSms, sends: int, concurrency: int) -> float:
    """Seconds for ``sends`` sends, ``concurrency`` at a time."""
    queue = iter(range(sends))
    args = {"code": "123456", "minutes": "5"}

    async def worker() -> None:
        for i in queue:
            await vendor.send("login", args, f"+86139{i:08d}")

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return time.perf_counter() - started


async def run(url: str, total: int, rounds: int, concurrency: int) -> None:
    sends = max(1, total // rounds)
    settings = TencentCloudSettings.model_validate(
        {
            "secret_id": "AKID-bench",
            "secret_key": "bench-secret",
            "sdk_app_id": "1400000000",
            "sign_name": "gocomm",
            "templates": {"login": {"id": "1234", "params": ["code", "minutes"]}},
            "endpoint": url,
        }
    )
    results: dict[str, list[tuple[float, int]]] = {"reused": [], "per-send": []}
    kinds: dict[str, type[TencentCloudSms]] = {
        "reused": TencentCloudSms,
        "per-send": PerSendClientTencent,
    }
    for cls in kinds.values():  # warm up both paths (imports, first connections)
        async with cls(settings) as vendor:
            await _round(vendor, 50, concurrency)
    for _ in range(rounds):
        for kind, cls in kinds.items():
            before = await _connections(url)
            async with cls(settings) as vendor:
                seconds = await _round(vendor, sends, concurrency)
            results[kind].append((seconds, await _connections(url) - before - 1))

    print(
        f"{sends * rounds} sends per client kind: {rounds} alternating rounds of {sends}, "
        f"{concurrency} in flight; medians over the rounds:"
    )
    print(f"{'client':<10} {'sends/s':>10} {'ms/send':>9} {'connections':>12}")
    rates: dict[str, float] = {}
    for kind, runs in results.items():
        seconds = statistics.median(s for s, _ in runs)
        connections = statistics.median(c for _, c in runs)
        rates[kind] = sends / seconds
        print(
            f"{kind:<10} {rates[kind]:>10.0f} {seconds / sends * 1000:>9.3f} {connections:>12.0f}"
        )
    print(f"reused / per-send throughput: {rates['reused'] / rates['per-send']:.1f}x")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=10)
    options = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server: Any = context.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        url = parent.recv()
        asyncio.run(run(url, options.sends, options.rounds, options.concurrency))
    finally:
        parent.send("stop")
        server.join(timeout=5)
        if server.is_alive():
            server.terminate()


if __name__ == "__main__":
    main()
