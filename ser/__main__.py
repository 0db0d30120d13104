"""``python -m ser``: the ``ser`` command."""

from ser.cli import entry

entry()
