"""``python -m ser.cli``: the ``ser`` command."""

from ser.cli import entry

entry()
