"""Batch sending (``gocomm batch``): rows, the resume journal, and the run.

- :mod:`gocomm.batch.rows`: reading and checking CSV or JSON lines, writing back failed rows;
- :mod:`gocomm.batch.journal`: the fsync'd journal that makes a batch resumable;
- :mod:`gocomm.batch.run`: sending the rows and summing up what happened.

The command line draws progress and the summary; everything it relies on lives here so that
it can be tested and reused without a terminal.
"""

from gocomm.batch.journal import Journal, JournalError
from gocomm.batch.rows import (
    DEFAULT_EMAIL_BIZ,
    MAX_CELL,
    BatchInputError,
    Format,
    Row,
    check_rows,
    detect_format,
    read_rows,
)
from gocomm.batch.run import FailedRowWriter, Outcome, Summary, run_batch
from gocomm.channels import CHANNELS

__all__ = [
    "CHANNELS",
    "DEFAULT_EMAIL_BIZ",
    "MAX_CELL",
    "BatchInputError",
    "FailedRowWriter",
    "Format",
    "Journal",
    "JournalError",
    "Outcome",
    "Row",
    "Summary",
    "check_rows",
    "detect_format",
    "read_rows",
    "run_batch",
]
