"""Client CPU per send of gocomm's HTTP SMS vendors against each vendor's official SDK.

One local server, in its own process, answers all three wire formats with success (Aliyun
``SendSms``, Tencent Cloud ``SendSms``, Twilio ``Messages``); it checks no signature, so that it
stays cheap. Per vendor, in one run, alternating rounds of ``--sends`` sends each:

- ``gocomm``: the vendor as shipped (signing, answer parsing and all), ``--concurrency`` sends in
  flight over its one keep-alive aiohttp session;
- ``gocomm/httpx`` (with ``--httpx``): the same vendor code over an ``httpx.AsyncClient`` with
  its pool capped at 8 connections (sniffio installed), the transport gocomm used before;
- ``SDK``: the vendor's official SDK in its best mode: Aliyun ``send_sms_async`` and Twilio's
  ``AsyncTwilioHttpClient`` with ``--concurrency`` sends in flight, Tencent Cloud's synchronous
  client one send after another (keep-alive on).

Client CPU is ``resource.getrusage(RUSAGE_SELF)`` of this process (every thread), around the
sends only; server CPU is the server process's own ``getrusage``, over the same sends. The table
shows the medians over the rounds: sends/s, client and server CPU in µs per send, and the
server's CPU as a share of the wall time (well under 100%: the server is not the bottleneck).
The target: gocomm's client CPU per send at most the SDK's, for every vendor.

    .venv/bin/python bench/http_vendor.py [--sends 2000] [--rounds 3] [--concurrency 32] [--httpx]

Needs the ``bench`` extra (the SDKs). A benchmark prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from gocomm_aliyun import AliyunSettings, AliyunSms
from gocomm_tencentcloud import TencentCloudSettings, TencentCloudSms
from gocomm_twilio import TwilioSettings, TwilioSms

from gocomm.httpclient import Response
from gocomm.httpvendor import HttpSmsVendor
from gocomm.testing.httpserver import HttpRequest, HttpResponse, LocalHttpServer

ACCOUNT_SID = "AC" + "0" * 32
ARGS = {"code": "123456"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------------


async def _answer(request: HttpRequest) -> HttpResponse:
    if request.path.endswith("/Messages.json"):  # Twilio
        form = request.form()
        return HttpResponse.json(
            {"sid": "SM" + "1" * 32, "status": "queued", "to": form.get("To"), "body": "x"},
            status=201,
        )
    if "x-tc-action" in request.headers:  # Tencent Cloud
        numbers = json.loads(request.body)["PhoneNumberSet"]
        statuses = [
            {"SerialNo": f"s-{i}", "PhoneNumber": n, "Code": "Ok", "Message": "send success"}
            for i, n in enumerate(numbers)
        ]
        return HttpResponse.json({"Response": {"SendStatusSet": statuses, "RequestId": "r"}})
    return HttpResponse.json({"Code": "OK", "Message": "OK", "BizId": "b-1", "RequestId": "r"})


def _serve(conn: Connection) -> None:
    """Serve :func:`_answer`; on "stats" over ``conn`` reply (CPU seconds, connections)."""

    async def main() -> None:
        server = LocalHttpServer(_answer)
        async with server:
            conn.send(server.url)
            loop = asyncio.get_running_loop()
            while (await loop.run_in_executor(None, conn.recv)) == "stats":
                server.requests.clear()  # keep memory flat over many requests
                conn.send((_cpu(), server.connections))

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# The clients: each runs `sends` sends after a warm-up, returns (seconds, client CPU seconds)
# --------------------------------------------------------------------------------------------


Send = Callable[[int], Awaitable[object]]


async def _in_flight(send: Send, sends: int, concurrency: int) -> None:
    numbers = iter(range(sends))

    async def worker() -> None:
        for i in numbers:
            await send(i)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())


async def _timed(send: Send, sends: int, concurrency: int) -> tuple[float, float]:
    await _in_flight(send, min(200, sends), concurrency)  # warm-up: connections, caches
    cpu, started = _cpu(), time.perf_counter()
    await _in_flight(send, sends, concurrency)
    return time.perf_counter() - started, _cpu() - cpu


def _gocomm_vendor(vendor: str, url: str) -> HttpSmsVendor:
    if vendor == "aliyun":
        return AliyunSms(
            AliyunSettings(
                access_key_id="LTAI-bench",
                access_key_secret="bench-secret",
                sign_name="gocomm",
                templates={"login": "SMS_1"},
                endpoint=url,
            )
        )
    if vendor == "tencentcloud":
        return TencentCloudSms(
            TencentCloudSettings.model_validate(
                {
                    "secret_id": "AKID-bench",
                    "secret_key": "bench-secret",
                    "sdk_app_id": "1400000000",
                    "sign_name": "gocomm",
                    "templates": {"login": {"id": "1234", "params": ["code"]}},
                    "endpoint": url,
                }
            )
        )
    return TwilioSms(
        TwilioSettings.model_validate(
            {
                "account_sid": ACCOUNT_SID,
                "auth_token": "bench-token",
                "from_number": "+15005550006",
                "templates": {"login": "Your code is {code}"},
                "endpoint": url,
            }
        )
    )


def _number(vendor: str, i: int) -> str:
    return f"+1415{i % 10_000_000:07d}" if vendor == "twilio" else f"+86139{i % 10**8:08d}"


class _HttpxClient:
    """The HttpClient interface over httpx (pool of 8), for the ``gocomm/httpx`` peer."""

    def __init__(self, base_url: str) -> None:
        import httpx

        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
        self._client = httpx.AsyncClient(base_url=base_url, limits=limits)

    async def post(self, path: str, *, content: bytes, headers: Mapping[str, str]) -> Response:
        answer = await self._client.post(path, content=content, headers=dict(headers))
        return Response(answer.status_code, answer.headers, answer.content)

    async def aclose(self) -> None:
        await self._client.aclose()


def gocomm_client(
    vendor: str, url: str, sends: int, concurrency: int, *, httpx: bool = False
) -> tuple[float, float]:
    async def run() -> tuple[float, float]:
        async with _gocomm_vendor(vendor, url) as sms:
            if httpx:
                sms._client = _HttpxClient(sms.endpoint)  # type: ignore[assignment]
            try:
                return await _timed(
                    lambda i: sms.send("login", ARGS, _number(vendor, i)), sends, concurrency
                )
            finally:
                if httpx:
                    await sms._client.aclose()

    return asyncio.run(run())


def aliyun_sdk(url: str, sends: int, concurrency: int) -> tuple[float, float]:
    from alibabacloud_dysmsapi20170525.client import Client
    from alibabacloud_dysmsapi20170525.models import SendSmsRequest
    from alibabacloud_tea_openapi.models import Config

    host = url.removeprefix("http://")
    config = Config(
        access_key_id="LTAI-bench",
        access_key_secret="bench-secret",
        endpoint=host,
        protocol="http",
    )

    async def run() -> tuple[float, float]:
        client = Client(config)

        async def send(i: int) -> object:
            request = SendSmsRequest(
                phone_numbers=_number("aliyun", i)[3:],
                sign_name="gocomm",
                template_code="SMS_1",
                template_param=json.dumps(ARGS),
            )
            answer = await client.send_sms_async(request)
            assert answer.body.code == "OK", answer.body
            return answer

        return await _timed(send, sends, concurrency)

    return asyncio.run(run())


def tencent_sdk(url: str, sends: int, concurrency: int) -> tuple[float, float]:
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.sms.v20210111 import models, sms_client

    profile = HttpProfile(protocol="http", endpoint=url.removeprefix("http://"), keepAlive=True)
    client = sms_client.SmsClient(
        Credential("AKID-bench", "bench-secret"), "ap-guangzhou", ClientProfile(httpProfile=profile)
    )

    def send(i: int) -> None:
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [_number("tencentcloud", i)]
        request.SmsSdkAppId = "1400000000"
        request.SignName = "gocomm"
        request.TemplateId = "1234"
        request.TemplateParamSet = [ARGS["code"]]
        answer = client.SendSms(request)
        assert answer.SendStatusSet[0].Code == "Ok"

    for i in range(min(200, sends)):  # warm-up
        send(i)
    cpu, started = _cpu(), time.perf_counter()
    for i in range(sends):  # its best mode: synchronous, one after another
        send(i)
    return time.perf_counter() - started, _cpu() - cpu


def twilio_sdk(url: str, sends: int, concurrency: int) -> tuple[float, float]:
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

    async def run() -> tuple[float, float]:
        http_client = AsyncTwilioHttpClient()  # builds its aiohttp session: needs a loop
        client = Client(ACCOUNT_SID, "bench-token", http_client=http_client)
        client.api.base_url = url
        messages = client.api.v2010.accounts(ACCOUNT_SID).messages

        async def send(i: int) -> object:
            message = await messages.create_async(
                to=_number("twilio", i), from_="+15005550006", body=f"Your code is {ARGS['code']}"
            )
            assert message.sid, message
            return message

        try:
            return await _timed(send, sends, concurrency)
        finally:
            await http_client.close()

    return asyncio.run(run())


Client = Callable[[str, int, int], tuple[float, float]]
SDKS: dict[str, Client] = {"aliyun": aliyun_sdk, "tencentcloud": tencent_sdk, "twilio": twilio_sdk}


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def _stats(conn: Connection) -> tuple[float, int]:
    conn.send("stats")
    cpu, connections = conn.recv()
    return float(cpu), int(connections)


def run(conn: Connection, url: str, options: argparse.Namespace) -> None:
    sends, concurrency = options.sends, options.concurrency
    print(
        f"{sends} sends per round, {options.rounds} alternating rounds, {concurrency} in flight "
        "(Tencent Cloud SDK: sequential); medians over the rounds; CPU in µs per send"
    )
    header = (
        f"{'vendor':<13} {'client':<13} {'sends/s':>8} {'client CPU':>11} {'server CPU':>11} "
        f"{'server busy':>12} {'conns':>6}"
    )
    print(header)
    verdicts: list[str] = []
    for vendor in options.vendors:
        kinds: dict[str, Client] = {
            "gocomm": lambda u, n, c, v=vendor: gocomm_client(v, u, n, c),
            "SDK": SDKS[vendor],
        }
        if options.httpx:
            kinds["gocomm/httpx"] = lambda u, n, c, v=vendor: gocomm_client(v, u, n, c, httpx=True)
        rows: dict[str, list[tuple[float, float, float, int]]] = {kind: [] for kind in kinds}
        for _ in range(options.rounds):
            for kind, client in kinds.items():
                server_cpu, connections = _stats(conn)
                seconds, cpu = client(url, sends, concurrency)
                server_after, connections_after = _stats(conn)
                rows[kind].append(
                    (seconds, cpu, server_after - server_cpu, connections_after - connections)
                )
        cpu_per_send: dict[str, float] = {}
        for kind, runs in rows.items():
            seconds = statistics.median(r[0] for r in runs)
            cpu_per_send[kind] = statistics.median(r[1] for r in runs) / sends * 1e6
            server = statistics.median(r[2] for r in runs) / sends * 1e6
            busy = statistics.median(r[2] / r[0] for r in runs) * 100
            connections = statistics.median(r[3] for r in runs)
            print(
                f"{vendor:<13} {kind:<13} {sends / seconds:>8.0f} {cpu_per_send[kind]:>11.0f} "
                f"{server:>11.0f} {busy:>11.0f}% {connections:>6.0f}"
            )
        ratio = cpu_per_send["gocomm"] / cpu_per_send["SDK"]
        verdict = "met" if ratio <= 1 else "NOT met"
        verdicts.append(f"{vendor}: gocomm / SDK client CPU per send = {ratio:.2f} ({verdict})")
    print("target gocomm CPU/send <= SDK CPU/send:")
    for line in verdicts:
        print(f"  {line}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--httpx", action="store_true", help="add gocomm's code over httpx")
    parser.add_argument(
        "--vendors",
        type=lambda text: text.split(","),
        default=["aliyun", "tencentcloud", "twilio"],
        help="comma-separated, of aliyun,tencentcloud,twilio",
    )
    options = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server: Any = context.Process(target=_serve, args=(child,), daemon=True)
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
