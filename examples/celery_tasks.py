"""Sending from Celery tasks through one gocomm SyncClient per worker process.

Run a worker with ``celery -A celery_tasks worker``; configure gocomm as usual (``GOCOMM_CONFIG``
or ``GOCOMM_...`` variables), the broker with ``CELERY_BROKER_URL``. Install plain ``celery``
(``celery[redis]`` pins an older redis-py than gocomm needs; the redis-py gocomm installs is
all Celery's Redis transport needs). Sends are made under idempotency keys, which live in Redis:
gocomm's configuration needs its ``redis`` section.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_shutdown

from gocomm.errors import CommError, is_retryable
from gocomm.sync import SyncClient

app = Celery(
    "notifications",
    broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("CELERY_RESULT_BACKEND"),
)
app.conf.update(
    # Acknowledge after the task ran, and give the message back if its worker process dies
    # mid-task, so that a crash never loses a send; the idempotency key (below) keeps the
    # message given back from being sent again when the first run's send was recorded.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
)

_client: SyncClient | None = None


def client() -> SyncClient:
    """This worker process's client, built on first use.

    The prefork pool forks after importing this module: a client built at import time would
    carry the parent's loop thread and connections into every child. Building it lazily gives
    each process its own.
    """
    global _client
    if _client is None:
        _client = SyncClient()
    return _client


@worker_process_shutdown.connect
def close_client(**_: Any) -> None:
    global _client
    if _client is not None:
        _client.close()
        _client = None


@app.task(bind=True, max_retries=5)
def send(
    self: Task, channel: str, biz: str, args: dict[str, str], *to: str, key: str | None = None
) -> dict[str, Any]:
    """Send through ``channel``'s stack once per message; retry later, only to those still
    owed, what may pass.

    ``key`` identifies the message for the application (an order id...); without it, the task
    id does, which Celery keeps when it redelivers the message and when the task retries.
    """
    task_id = self.request.id  # None in a direct call, send(...): no key then
    idempotency_key = key or (f"celery:{task_id}" if task_id else None)
    try:
        receipt = client().send(
            channel, biz, args, *to, timeout=60, idempotency_key=idempotency_key
        )
    except CommError as exc:
        if not is_retryable(exc):  # IdempotencyConflict too: the key names another message
            raise
        # DuplicateInFlight (another run holds the key) waits out its retry_after like the rest.
        owed = exc.unsent if exc.unsent is not None else to
        countdown = exc.retry_after or 2.0**self.request.retries
        raise self.retry(
            args=(channel, biz, args, *owed), kwargs={"key": key}, countdown=countdown, exc=exc
        ) from exc
    if receipt is None:
        return {"message_ids": [], "replayed": False}
    # replayed: an earlier run sent it (the message was delivered again); nothing was sent now.
    return {"message_ids": list(receipt.message_ids), "replayed": receipt.replayed}
