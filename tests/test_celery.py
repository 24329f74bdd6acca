"""The Celery recipe with a real worker process on the suite's Redis (broker and results)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: queue.lease in the workers' configuration: how long a dead holder's hold on a key lasts.
LEASE = 2.0


def _wait_for(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def celery_env(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A Redis-backed Celery app environment and a gocomm configuration whose sms vendor
    writes each delivery to a file (the deliveries are counted from those files), with the
    same Redis for idempotency keys, held for a short lease (so that a dead holder's hold
    ends within the test)."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    tmp_path = tmp_path_factory.mktemp("celery")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    config = tmp_path / "gocomm.yaml"
    config.write_text(
        f"redis: {{url: '{redis_url}'}}\n"
        f"queue: {{lease: {LEASE}}}\n"
        f"sms:\n  vendors:\n    - plugin: file\n      directory: {outbox}\n"
    )
    env = {
        # Neither gocomm's variables nor a Django settings module (Celery would set Django up).
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GOCOMM_") and k != "DJANGO_SETTINGS_MODULE"
        },
        "GOCOMM_CONFIG": str(config),
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "KILL_APP_MARKERS": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "examples"), str(ROOT / "tests" / "celery_apps")]
        ),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the test process enqueues with the same app
    try:
        yield {"env": env, "outbox": outbox, "markers": tmp_path}
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def worker(celery_env: dict[str, Any]) -> Iterator[subprocess.Popen[bytes]]:
    log = (celery_env["markers"] / "worker.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "kill_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"w{os.getpid()}@localhost",
        ],
        env=celery_env["env"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the pool's children die with the group
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _delivered(outbox: Path, prefix: str) -> list[str]:
    """The numbers starting with ``prefix`` of every delivery the file vendor wrote."""
    numbers = (json.loads(p.read_text())["to"] for p in outbox.glob("*.json"))
    return [n for to in numbers for n in to if n.startswith(prefix)]


def _app() -> Any:
    sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "tests" / "celery_apps")]
    try:
        import kill_app

        return kill_app
    finally:
        del sys.path[:2]


def test_tasks_send_through_one_client_per_worker_process(
    celery_env: dict[str, Any], worker: Any
) -> None:
    tasks = _app()
    results = [
        tasks.app.send_task(
            "celery_tasks.send", args=("sms", "login", {"code": str(i)}, f"+861380000{i:04d}")
        )
        for i in range(20)
    ]
    outcomes = [r.get(timeout=60) for r in results]
    assert all(len(o["message_ids"]) == 1 and not o["replayed"] for o in outcomes)
    delivered = _delivered(celery_env["outbox"], "+861380000")
    assert sorted(delivered) == sorted(f"+861380000{i:04d}" for i in range(20))


def test_a_worker_process_killed_mid_task_is_redelivered_and_sends_once(
    celery_env: dict[str, Any], worker: Any
) -> None:
    tasks = _app()
    markers: Path = celery_env["markers"]
    result = tasks.send_after_gate.delay(str(markers), "+8613800001111")
    _wait_for(lambda: list(markers.glob("started-*")), 60, "the task to start")
    (victim,) = [int(p.name.split("-")[1]) for p in markers.glob("started-*")]
    os.kill(victim, signal.SIGKILL)  # it dies before it sends
    (markers / "gate-open").touch()  # the redelivered run may go through
    assert len(result.get(timeout=60)) == 1
    starts = {int(p.name.split("-")[1]) for p in markers.glob("started-*")}
    assert victim in starts and len(starts) == 2  # run again, in another process
    assert _delivered(celery_env["outbox"], "+8613800001111") == ["+8613800001111"]


def _markers(directory: Path, prefix: str) -> list[Path]:
    return sorted(directory.glob(f"{prefix}-*"))


def _pid(marker: Path) -> int:
    return int(marker.name.rsplit("-", 1)[1])


def test_a_worker_process_killed_after_sending_is_redelivered_and_replays(
    celery_env: dict[str, Any], worker: Any
) -> None:
    """Killed after the send was recorded under its key (the task id) and before the task
    returned: the message comes back, and the run in another process sends nothing."""
    tasks = _app()
    markers: Path = celery_env["markers"]
    number = "+8613800002201"
    result = tasks.app.send_task(
        "celery_tasks.send", args=("sms", tasks.PAUSE_AFTER_SEND, {"code": "7"}, number)
    )
    _wait_for(lambda: _markers(markers, "sent"), 60, "the first run to send")
    (first,) = _markers(markers, "sent")
    sent = json.loads(first.read_text())
    assert sent["replayed"] is False and len(sent["message_ids"]) == 1
    assert _delivered(celery_env["outbox"], number) == [number]
    os.kill(_pid(first), signal.SIGKILL)  # its message is not acknowledged: it comes back
    (markers / "gate-after-send").touch()  # the run after it goes through

    outcome = tasks.app.AsyncResult(result.id).get(timeout=60)
    assert outcome == {"message_ids": sent["message_ids"], "replayed": True}
    assert _delivered(celery_env["outbox"], number) == [number]
    assert _markers(markers, f"retry-{result.id}") == []


def test_a_worker_process_killed_while_sending_is_sent_again_when_its_lease_ends(
    celery_env: dict[str, Any], worker: Any
) -> None:
    """Killed after the vendor accepted, before the outcome was recorded: nobody knows the
    vendor got it, so the message is sent again once the dead run's hold on the key has ended
    (at-least-once). A run redelivered while the hold lasts gets DuplicateInFlight and retries
    after it; whether Celery redelivers within the lease depends on how soon its pool notices
    the dead process (up to seconds), so the test allows both."""
    tasks = _app()
    markers: Path = celery_env["markers"]
    number = "+8613800003301"
    result = tasks.app.send_task(
        "celery_tasks.send",
        args=("sms", tasks.PAUSE_IN_SEND, {"code": "8"}, number),
        kwargs={"key": "order-33"},
    )
    _wait_for(lambda: _markers(markers, "in-send"), 60, "the vendor to accept the first run")
    assert _delivered(celery_env["outbox"], number) == [number]
    (paused,) = _markers(markers, "in-send")
    os.kill(_pid(paused), signal.SIGKILL)
    (markers / "gate-in-send").touch()  # the runs after it go through

    outcome = tasks.app.AsyncResult(result.id).get(timeout=60)
    assert outcome["replayed"] is False and len(outcome["message_ids"]) == 1
    assert _delivered(celery_env["outbox"], number) == [number, number]
    retries = {m.read_text() for m in _markers(markers, f"retry-{result.id}")}
    assert retries <= {"DuplicateInFlight"}
