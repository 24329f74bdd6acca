"""docs/errors.md runs: its FastAPI app, configured by its YAML, answers each gocomm error with
the HTTP status the page promises, against the fake Aliyun and Tencent Cloud servers and a
real Redis."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from gocomm_aliyun.testing import ACCESS_KEY_ID, ACCESS_KEY_SECRET, FakeAliyun
from gocomm_tencentcloud.testing import SDK_APP_ID, SECRET_ID, SECRET_KEY, FakeTencentCloud
from redis.asyncio import Redis

PAGE = Path(__file__).resolve().parents[1] / "docs" / "errors.md"


def _block(language: str, containing: str) -> str:
    blocks = re.findall(rf"^```{language}\n(.*?)^```", PAGE.read_text(), re.DOTALL | re.MULTILINE)
    (block,) = [b for b in blocks if containing in b]
    return block


async def test_the_fastapi_example_answers_each_error_as_the_page_says(
    redis_url: str, redis_client: Redis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "gocomm.yaml"
    config.write_text(_block("yaml", "plugin: aliyun"))
    async with FakeAliyun().serving() as aliyun, FakeTencentCloud().serving() as tencent:
        for name in [n for n in os.environ if n.startswith("GOCOMM_")]:
            monkeypatch.delenv(name)
        for name, value in {
            "GOCOMM_CONFIG": str(config),
            "REDIS_URL": redis_url,
            "ALIYUN_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "ALIYUN_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
            "ALIYUN_ENDPOINT": aliyun.url,
            "TENCENT_SECRET_ID": SECRET_ID,
            "TENCENT_SECRET_KEY": SECRET_KEY,
            "TENCENT_SDK_APP_ID": SDK_APP_ID,
            "TENCENT_ENDPOINT": tencent.url,
        }.items():
            monkeypatch.setenv(name, value)
        namespace: dict[str, Any] = {"__name__": "app"}
        exec(compile(_block("python", "FastAPI("), str(PAGE), "exec"), namespace)
        app = namespace["app"]
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://app") as client,
        ):
            # A number without its country code: 422, no vendor asked, no quota taken.
            answer = await client.post("/login-code", json={"phone": "13800138000"})
            assert answer.status_code == 422, answer.text
            assert "13800138000" in answer.json()["detail"]
            assert aliyun.accepted == [] and tencent.accepted == []
            assert await redis_client.keys("*") == []

            answer = await client.post("/login-code", json={"phone": "+86 138 0013 8000"})
            assert answer.status_code == 202, answer.text
            assert [d.recipient for d in aliyun.deliveries] == ["+8613800138000"]

            # One code per number per minute: 429, and when to come back.
            answer = await client.post("/login-code", json={"phone": "+8613800138000"})
            assert answer.status_code == 429, answer.text
            assert 0 < int(answer.headers["Retry-After"]) <= 60

            # Both vendors down: failover tried each, the user is told to come back later.
            aliyun.mode, tencent.mode = "http503", "http502"
            answer = await client.post("/login-code", json={"phone": "+8613900139000"})
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"] == "60"
            assert len(aliyun.accepted) == 2 and len(tencent.accepted) == 1

            # The vendors are back: that number's quota was given back, it gets its code now.
            aliyun.mode = tencent.mode = "ok"
            answer = await client.post("/login-code", json={"phone": "+8613900139000"})
            assert answer.status_code == 202, answer.text
