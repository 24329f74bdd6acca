"""The HTTP client under the HTTP vendors, against a real loopback server: keep-alive, lazy
session, timeouts, TLS verification and the mapping of failures to gocomm errors."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme

from gocomm.errors import PermanentError, SendError, SendTimeout, is_retryable
from gocomm.httpclient import HttpClient, host_header, transport_errors
from gocomm.testing.httpserver import HttpRequest, HttpResponse, LocalHttpServer


async def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse.json(
        {"path": request.path, "body": request.body.decode(), "type": request.headers.get("x-t")},
        status=201,
        headers={"Retry-After": "3"},
    )


@pytest.fixture
async def server() -> AsyncIterator[LocalHttpServer]:
    async with LocalHttpServer(echo) as server:
        yield server


def test_built_without_a_running_loop() -> None:
    client = HttpClient("http://127.0.0.1:1/", connect_timeout=1.5, read_timeout=7.0)
    assert client.base_url == "http://127.0.0.1:1"
    assert not client.closed

    async def use() -> int:
        async with LocalHttpServer(echo) as server:
            client.base_url = server.url
            answer = await client.post("/x", content=b"", headers={})
            await client.aclose()
            return answer.status_code

    assert asyncio.run(use()) == 201  # the session opened on the loop that used it


async def test_post_reads_the_answer_over_one_kept_alive_connection(
    server: LocalHttpServer,
) -> None:
    client = HttpClient(server.url + "/base", connect_timeout=1, read_timeout=1)
    answers = await asyncio.gather(
        *(client.post(f"/p{i}", content=b"hi", headers={"X-T": "a"}) for i in range(3))
    )
    answers += [await client.post("/again", content=b"", headers={}) for _ in range(3)]
    assert answers[0].status_code == 201
    assert answers[0].json() == {"path": "/base/p0", "body": "hi", "type": "a"}
    assert answers[0].headers.get("retry-after") == answers[0].headers.get("RETRY-AFTER") == "3"
    assert answers[0].content.startswith(b"{")
    assert server.connections == 3  # three at once, then reused
    await client.aclose()
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.post("/", content=b"", headers={})


async def test_read_timeout_is_a_send_timeout() -> None:
    release = asyncio.Event()

    async def stall(request: HttpRequest) -> HttpResponse:
        await release.wait()
        return HttpResponse(200)

    async with LocalHttpServer(stall) as server:
        client = HttpClient(server.url, connect_timeout=1, read_timeout=0.2)
        with pytest.raises(SendTimeout) as caught, transport_errors("v", unsent=["+1"]):
            await client.post("/", content=b"x", headers={})
        release.set()
        await client.aclose()
    assert (caught.value.vendor, caught.value.unsent) == ("v", ("+1",))
    assert isinstance(caught.value, TimeoutError)
    assert "read_timeout" in str(caught.value)


async def test_refused_connection_is_retryable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = HttpClient(f"http://127.0.0.1:{port}", connect_timeout=1, read_timeout=1)
    with pytest.raises(SendError) as caught, transport_errors("v", what="SendSms request"):
        await client.post("/", content=b"", headers={})
    await client.aclose()
    assert type(caught.value) is SendError
    assert is_retryable(caught.value)
    assert "SendSms request failed on the network" in str(caught.value)


def test_other_exceptions_pass_untouched() -> None:
    with pytest.raises(KeyError), transport_errors("v"):
        raise KeyError("x")


async def test_tls_is_verified() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    async with LocalHttpServer(echo, ssl=server_context) as server:
        untrusting = HttpClient(server.url, connect_timeout=2, read_timeout=2)
        with pytest.raises(PermanentError) as caught, transport_errors("v", unsent=["+1"]):
            await untrusting.post("/", content=b"", headers={})
        await untrusting.aclose()
        trusting_context = ssl.create_default_context()
        ca.configure_trust(trusting_context)
        trusting = HttpClient(
            server.url, connect_timeout=2, read_timeout=2, ssl_context=trusting_context
        )
        answer = await trusting.post("/ok", content=b"", headers={})
        await trusting.aclose()
    assert caught.value.code == "CertificateError"
    assert caught.value.unsent == ("+1",)
    assert "certificate" in str(caught.value)
    assert answer.json()["path"] == "/ok"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://sms.tencentcloudapi.com", "sms.tencentcloudapi.com"),
        ("https://sms.tencentcloudapi.com:443", "sms.tencentcloudapi.com"),
        ("http://127.0.0.1:8080/x", "127.0.0.1:8080"),
        ("http://Example.com:80", "example.com"),
        ("https://[::1]:8443", "[::1]:8443"),
    ],
)
def test_host_header(url: str, host: str) -> None:
    assert host_header(url) == host
