"""``python -m gocomm``: the ``gocomm`` command."""

from gocomm.cli import main

main()
