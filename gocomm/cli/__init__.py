"""The ``gocomm`` command: send, batch, worker, dead-letter, plugins, config, fake.

Exit codes: 0 everything was sent (or the command had nothing to send), 1 a send failed,
2 a usage, configuration or input error found before anything was sent. Errors print as one
``error: ...`` line on stderr; ``--debug`` adds the traceback and debug logging.

Each command builds the container once and always shuts its resources down, whatever happens.
"""

from gocomm.cli import batch, fake, info, send, workers  # noqa: F401 - each registers its commands
from gocomm.cli.app import app, main

__all__ = ["app", "main"]
