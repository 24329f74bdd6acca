"""The docs' Celery recipe (examples/celery_tasks.py) plus one task that waits to be killed.

Loaded by a real ``celery worker`` process that tests/test_celery.py starts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Task
from celery_tasks import app, client

__all__ = ["app", "send_after_gate"]


@app.task(bind=True)
def send_after_gate(self: Task, markers: str, number: str) -> list[str]:
    """Say which process runs it, wait (to be killed) until the test opens the gate, send."""
    directory = Path(markers)
    (directory / f"started-{os.getpid()}").touch()
    while not (directory / "gate-open").exists():
        time.sleep(0.05)
    receipt = client().send("sms", "login", {"code": "1"}, number, timeout=30)
    return list(receipt.message_ids) if receipt is not None else []
