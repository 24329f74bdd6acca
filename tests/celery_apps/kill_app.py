"""The docs' Celery recipe (examples/celery_tasks.py) plus what lets the test kill a worker
process at a chosen moment.

Loaded by a real ``celery worker`` process that tests/test_celery.py starts. ``KILL_APP_MARKERS``
is the directory where the worker processes and the test leave marker files; a marker is written
whole (renamed into place), so the test never reads half of one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import celery_tasks
from celery import Task
from celery.signals import task_retry, worker_process_init
from celery_tasks import app, client

from gocomm.events import Event, SendFinished, add_listener
from gocomm.sync import SyncClient

__all__ = ["PAUSE_AFTER_SEND", "PAUSE_IN_SEND", "app", "send_after_gate"]

#: A send with this ``biz`` pauses after SyncClient.send returned, before the task returns.
PAUSE_AFTER_SEND = "pause-after-send"

#: A send with this ``biz`` pauses when the vendor has accepted it, before the idempotency
#: store records that (the first time only: until the test opens ``gate-in-send``).
PAUSE_IN_SEND = "pause-in-send"


def _markers() -> Path:
    return Path(os.environ["KILL_APP_MARKERS"])


def _write(name: str, content: str) -> None:
    partial = _markers() / f".{name}.partial"
    partial.write_text(content)
    partial.rename(_markers() / name)


def _wait_for_gate(name: str) -> None:
    while not (_markers() / name).exists():
        time.sleep(0.05)


@app.task(bind=True)
def send_after_gate(self: Task, markers: str, number: str) -> list[str]:
    """Say which process runs it, wait (to be killed) until the test opens the gate, send."""
    directory = Path(markers)
    (directory / f"started-{os.getpid()}").touch()
    while not (directory / "gate-open").exists():
        time.sleep(0.05)
    receipt = client().send("sms", "login", {"code": "1"}, number, timeout=30)
    return list(receipt.message_ids) if receipt is not None else []


class PausingClient(SyncClient):
    """The recipe's client, which pauses once a PAUSE_AFTER_SEND send has returned (sent and
    recorded under its key) and before the task returns, the first time only: it writes
    ``sent-<pid>`` with the receipt and waits until the test opens ``gate-after-send`` (or
    kills this process)."""

    def send(self, channel: str, biz: str, args: Any, *to: str, **options: Any) -> Any:
        receipt = super().send(channel, biz, args, *to, **options)
        if biz == PAUSE_AFTER_SEND and not (_markers() / "gate-after-send").exists():
            ids = list(receipt.message_ids) if receipt is not None else []
            replayed = receipt is not None and receipt.replayed
            _write(f"sent-{os.getpid()}", json.dumps({"message_ids": ids, "replayed": replayed}))
            _wait_for_gate("gate-after-send")
        return receipt


def pause_in_send(event: Event) -> None:
    """On the client's loop thread, as the stack reports a PAUSE_IN_SEND send done (inside
    the IdempotentSender, which records it next): write ``in-send-<pid>`` and block the loop
    (its lease renewal too) until the test opens ``gate-in-send`` (or kills this process)."""
    if not isinstance(event, SendFinished) or event.biz != PAUSE_IN_SEND:
        return
    if event.outcome == "sent" and not (_markers() / "gate-in-send").exists():
        _write(f"in-send-{os.getpid()}", "")
        _wait_for_gate("gate-in-send")


@worker_process_init.connect
def install_pauses(**_: Any) -> None:
    """In each worker process (not in the test process, which imports this module too): the
    recipe builds its client from the name ``SyncClient``; listen for PAUSE_IN_SEND."""
    celery_tasks.SyncClient = PausingClient  # type: ignore[misc]
    add_listener(pause_in_send)


@task_retry.connect
def record_retry(request: Any, reason: Any, **_: Any) -> None:
    """Write ``retry-<task id>-<retries so far>`` naming the error a task retried on."""
    error = type(getattr(reason, "exc", reason)).__name__
    _write(f"retry-{request.id}-{request.retries}", error)
