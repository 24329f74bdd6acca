"""gocomm.sync.SyncClient: the blocking facade for threads, forks and closed clients."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gocomm.containers import build_container
from gocomm.errors import ConfigError, InvalidRecipient, Limited
from gocomm.plugins import VendorRegistry, VendorSettings, VendorSpec, hookimpl, load_registry
from gocomm.recipients import validate_phone
from gocomm.sender import AsyncCloseable, Receipt
from gocomm.sync import SyncClient

PHONE = "+8613800000000"
SETTINGS: dict[str, Any] = {
    "sms": {"vendors": [{"plugin": "memory"}]},
    "email": {"vendors": [{"plugin": "memory"}]},
}


class LoopRecorder(AsyncCloseable):
    """A vendor that records which thread and loop ran each send, and its own closing."""

    name = "recorder"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sends: list[tuple[str, tuple[str, ...]]] = []
        self.loops: set[int] = set()
        self.threads: set[str] = set()
        self.cancelled = 0

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        for number in to:
            validate_phone(number)
        self.loops.add(id(asyncio.get_running_loop()))
        self.threads.add(threading.current_thread().name)
        if self.delay:
            try:
                await asyncio.sleep(self.delay)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        self.sends.append((biz, to))
        return Receipt(vendor=self.name, message_ids=(f"id-{len(self.sends)}",))


class RecorderSettings(VendorSettings):
    pass


class RecorderPlugin:
    """Registers ``recorder``: every vendor it makes is the test's ``vendor``, so the test can
    see the container (not the test) close it."""

    def __init__(self, vendor: LoopRecorder) -> None:
        self.vendor = vendor

    @hookimpl
    def gocomm_register_vendors(self, registry: VendorRegistry) -> None:
        registry.add(
            VendorSpec(
                "recorder", frozenset({"sms"}), RecorderSettings, lambda _: self.vendor, "test"
            )
        )


def _client_with(vendor: LoopRecorder) -> SyncClient:
    registry = load_registry(entry_points=False, plugins=[RecorderPlugin(vendor)])
    settings = {"sms": {"vendors": [{"plugin": "recorder"}]}}
    return SyncClient(container=build_container(settings, registry=registry))


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gocomm-sync-loop"]


def test_send_from_plain_code_returns_the_vendors_receipt() -> None:
    with SyncClient(SETTINGS) as client:
        receipt = client.send("sms", "login", {"code": "1234"}, PHONE)
    assert receipt is not None
    assert receipt.vendor == "memory"


def test_many_threads_share_one_loop_and_one_stack() -> None:
    vendor = LoopRecorder(delay=0.001)
    with _client_with(vendor) as client, ThreadPoolExecutor(16) as pool:
        receipts = list(
            pool.map(
                lambda i: client.send("sms", "login", {"code": str(i)}, f"+86138000{i:05d}"),
                range(200),
            )
        )
    assert all(r is not None and r.vendor == "recorder" for r in receipts)
    assert len(vendor.sends) == 200
    assert len({to for _, to in vendor.sends}) == 200
    assert len(vendor.loops) == 1  # one loop for the client's lifetime
    assert vendor.threads == {"gocomm-sync-loop"}


def test_errors_are_gocomms_own_with_their_traceback() -> None:
    with SyncClient(SETTINGS) as client, pytest.raises(InvalidRecipient) as info:
        client.send("sms", "login", {"code": "1"}, "13800138000")
    assert "13800138000" in str(info.value)
    frames = "".join(traceback.format_tb(info.value.__traceback__))
    assert "gocomm/recipients.py" in frames  # raised where the stack found it, not re-created here


def test_the_stack_keeps_its_state_between_calls() -> None:
    settings = {
        "sms": {
            "vendors": [{"plugin": "memory"}],
            "ratelimit": {
                "algorithm": "sliding_window",
                "key": "sms:{to}",
                "rate": 1,
                "window": 60,
            },
        }
    }
    with SyncClient(settings) as client:
        client.send("sms", "login", {"code": "1"}, PHONE)
        with pytest.raises(Limited):  # the limiter survived: one loop, one container
            client.send("sms", "login", {"code": "2"}, PHONE)


def test_timeout_raises_timeout_error_and_cancels_the_send() -> None:
    vendor = LoopRecorder(delay=5.0)
    with _client_with(vendor) as client:
        with pytest.raises(TimeoutError):
            client.send("sms", "login", {"code": "1"}, PHONE, timeout=0.05)
        assert vendor.sends == []
        assert vendor.cancelled == 1  # cancelled on the loop, not left running
        vendor.delay = 0.0
        assert client.send("sms", "login", {"code": "1"}, PHONE) is not None  # still usable


def test_close_closes_the_vendors_and_stops_the_thread() -> None:
    before = len(_loop_threads())
    vendor = LoopRecorder()
    client = _client_with(vendor)
    client.send("sms", "login", {"code": "1"}, PHONE)
    assert len(_loop_threads()) == before + 1
    client.close()
    client.close()  # idempotent
    assert vendor.closed
    assert len(_loop_threads()) == before


def test_send_after_close_names_the_closed_client() -> None:
    client = SyncClient(SETTINGS)
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.send("sms", "login", {"code": "1"}, PHONE)


def test_no_thread_leaks_across_many_clients_timeouts_and_errors() -> None:
    before = len(_loop_threads())
    for _ in range(10):
        vendor = LoopRecorder(delay=1.0)
        with _client_with(vendor) as client:
            with pytest.raises(TimeoutError):
                client.send("sms", "login", {"code": "1"}, PHONE, timeout=0.01)
            with pytest.raises(InvalidRecipient):
                client.send("sms", "login", {"code": "1"}, "not a number")
    assert len(_loop_threads()) == before


def test_a_client_dropped_without_close_still_stops_its_thread() -> None:
    import gc

    before = len(_loop_threads())
    vendor = LoopRecorder()
    client = _client_with(vendor)
    client.send("sms", "login", {"code": "1"}, PHONE)
    del client
    gc.collect()
    assert vendor.closed
    assert len(_loop_threads()) == before


async def test_calling_it_from_a_running_loop_says_to_await_instead() -> None:
    with SyncClient(SETTINGS) as client, pytest.raises(RuntimeError, match="await"):
        client.send("sms", "login", {"code": "1"}, PHONE)


def test_a_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(ConfigError):
        SyncClient({"sms": {"vendors": [{"plugin": "no-such-vendor"}]}})


def test_an_unknown_channel_is_refused_before_sending() -> None:
    vendor = LoopRecorder()
    with _client_with(vendor) as client, pytest.raises(ValueError, match="fax"):
        client.send("fax", "login", {"code": "1"}, PHONE)
    assert vendor.sends == []


def test_a_forked_child_gets_a_working_client_of_its_own(tmp_path: Any) -> None:
    settings = {"sms": {"vendors": [{"plugin": "file", "directory": str(tmp_path)}]}}
    with SyncClient(settings) as client:
        client.send("sms", "login", {"code": "parent"}, PHONE)  # the parent's loop is running
        pid = os.fork()
        if pid == 0:  # the child: the parent's loop thread does not exist here
            code = 1
            try:
                receipt = client.send("sms", "login", {"code": "child"}, PHONE, timeout=10)
                code = 0 if receipt is not None and _loop_threads() else 3
                client.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        client.send("sms", "login", {"code": "parent again"}, PHONE)  # the parent is unharmed
    written = sorted(p.read_text() for p in tmp_path.iterdir())
    assert len(written) == 3
    assert sum("child" in text for text in written) == 1


def test_a_client_built_from_a_container_refuses_use_after_fork() -> None:
    vendor = LoopRecorder()
    with _client_with(vendor) as client:
        client.send("sms", "login", {"code": "1"}, PHONE)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                client.send("sms", "login", {"code": "child"}, PHONE)
            except RuntimeError as exc:
                code = 0 if "after the fork" in str(exc) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert len(vendor.sends) == 1


# -- the page's examples run as shown ------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "sync.md"
_FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _page_block(marker: str) -> str:
    (block,) = [b for b in _FENCE.findall(DOCS.read_text()) if marker in b]
    return block


def _run_block(block: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name in list(os.environ):
        if name.startswith("GOCOMM_"):
            monkeypatch.delenv(name)  # the examples use the embedded default
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(block, str(DOCS), "exec"), namespace)
    return namespace


def test_the_pages_first_example_sends(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _run_block(_page_block("with SyncClient() as client"), monkeypatch)
    assert "Receipt(vendor='console'" in capsys.readouterr().out


def test_the_flask_example_answers_202_422_and_429(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = _run_block(_page_block("Flask(__name__)"), monkeypatch)
    http = namespace["app"].test_client()
    try:
        assert http.post("/login-code", json={"phone": "+8613800138000"}).status_code == 202
        bad = http.post("/login-code", json={"phone": "13800138000"})
        assert bad.status_code == 422
        assert "13800138000" in bad.get_json()["error"]
        for _ in range(20):  # the embedded default allows 20 per number per minute
            http.post("/login-code", json={"phone": "+8613800138001"})
        limited = http.post("/login-code", json={"phone": "+8613800138001"})
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) > 0
    finally:
        namespace["sms"].close()


# -- the way back: finished sends wake their callers in a chain ---------------------------------


class EchoVendor(LoopRecorder):
    """Answers each send with the recipient as its message id. Numbers ending in 9 hang (their
    callers' timeouts cancel them), other odd ones wait on the loop a little: some sends finish
    at once, some suspend, some are cancelled."""

    name = "echo"

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        validate_phone(to[0])
        last = int(to[0][-1])
        try:
            if last == 9:
                await asyncio.sleep(30)
            elif last % 2:
                await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return Receipt(vendor=self.name, message_ids=to)


def test_each_caller_gets_its_own_outcome_when_many_finish_together() -> None:
    def one(i: int) -> str:
        number = f"+86138{i:08d}" if i % 5 else f"86138{i:08d}"  # every 5th is refused
        try:
            receipt = client.send(
                "sms", "login", {"code": "1"}, number, timeout=0.05 if i % 10 == 9 else None
            )
        except InvalidRecipient as exc:  # the error of this caller's own send, not another's
            return f"refused {number}" if number in str(exc) else f"someone else's error: {exc}"
        except TimeoutError:
            return f"timed out {number}"
        assert receipt is not None
        return receipt.message_ids[0]

    def expected(i: int) -> str:
        number = f"+86138{i:08d}"
        if i % 5 == 0:
            return f"refused {number[1:]}"
        return f"timed out {number}" if i % 10 == 9 else number

    before = len(_loop_threads())
    vendor = EchoVendor()
    registry = load_registry(entry_points=False, plugins=[RecorderPlugin(vendor)])
    settings = {"sms": {"vendors": [{"plugin": "recorder"}]}}
    with (
        SyncClient(container=build_container(settings, registry=registry)) as client,
        ThreadPoolExecutor(24) as pool,
    ):
        outcomes = list(pool.map(one, range(600)))
    assert outcomes == [expected(i) for i in range(600)]
    assert vendor.cancelled == 60  # every timed-out send was cancelled on the loop
    assert len(_loop_threads()) == before


class Interrupted(BaseException):
    """What the test's signal handler raises in the main thread, as Ctrl-C would."""


def test_an_interrupted_caller_in_the_middle_of_a_chain_does_not_strand_the_others() -> None:
    import signal
    import time

    class Gated(LoopRecorder):
        """Holds every send, a cancelled one too, until the gate opens; then they all finish
        in one loop iteration, in the order they arrived, so their callers form one chain."""

        def __init__(self) -> None:
            super().__init__()
            self.gate: asyncio.Event | None = None
            self.waiting = 0

        async def send(self, biz: str, args: Any, *to: str) -> Receipt:
            if biz == "warm":
                return Receipt(vendor=self.name)
            if self.gate is None:
                self.gate = asyncio.Event()
            self.waiting += 1
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                await self.gate.wait()
                raise
            return Receipt(vendor=self.name, message_ids=to)

    def wait_for_waiting(count: int) -> None:
        deadline = time.monotonic() + 10
        while vendor.waiting < count:
            assert time.monotonic() < deadline
            time.sleep(0.005)

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    vendor = Gated()
    main = threading.main_thread().ident
    assert threading.get_ident() == main and main is not None
    results: dict[str, Receipt | None] = {}
    workers: list[threading.Thread] = []

    def start(number: str) -> None:
        worker = threading.Thread(
            target=lambda: results.__setitem__(number, client.send("sms", "b", {}, number))
        )
        worker.start()
        workers.append(worker)

    def conduct() -> None:  # the first caller before the main thread's send, two after it
        start("+8613800000001")
        wait_for_waiting(1)
        controller_ready.set()
        wait_for_waiting(2)
        start("+8613800000002")
        start("+8613800000003")
        wait_for_waiting(4)
        signal.pthread_kill(main, signal.SIGUSR1)

    controller_ready = threading.Event()
    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        with _client_with(vendor) as client:
            client.send("sms", "warm", {}, PHONE)  # resolve the stack first
            controller = threading.Thread(target=conduct)
            controller.start()
            assert controller_ready.wait(10)
            with pytest.raises(Interrupted):
                client.send("sms", "b", {}, "+8613800000000")
            controller.join(10)
            gate = vendor.gate
            assert gate is not None
            client._runner.loop.call_soon_threadsafe(gate.set)  # type: ignore[union-attr]
            for worker in workers:
                worker.join(10)
                assert not worker.is_alive()  # woken past the caller that gave up
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert {n: r.message_ids for n, r in results.items() if r is not None} == {
        n: (n,) for n in ("+8613800000001", "+8613800000002", "+8613800000003")
    }
