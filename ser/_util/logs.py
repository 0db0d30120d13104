"""Logging for the CLI: ser's own lines on the terminal, everything (Ray's included) in a run's ``ser.log``.

The library only logs (``logging.getLogger(__name__)``); the CLI decides where lines go. Ray installs its
own stderr handlers on the ``ray`` loggers; ``adopt_ray_loggers`` takes them off so Ray's INFO lines, its
token banner and its actor warnings reach ``ser.log`` (through the root logger) but not the terminal,
unless ``-vv``.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import threading
from pathlib import Path

RAY_LOGGERS = ("ray", "ray.data", "ray.tune", "ray.train", "ray.air")
OWN_LOGGERS = ("ser", "jobs")
"""ser's own loggers: the library and its Ray layer."""


def is_own(record: logging.LogRecord) -> bool:
    return record.name.split(".", 1)[0] in OWN_LOGGERS
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ConsoleFormatter(logging.Formatter):
    """INFO as the bare message; warnings and errors prefixed so they stand out (``ser tune: warning: ...``)."""

    def __init__(self, command: str):
        super().__init__()
        self.command = command

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not is_own(record):                              # another library's line (-vv): say whose
            return f"{record.name}: {message}"
        if record.levelno >= logging.WARNING:
            return f"ser {self.command}: {record.levelname.lower()}: {message}"
        return message


class OwnLines(logging.Filter):
    """Pass ser's records; other libraries' only at ``-vv`` (they are all in ser.log anyway)."""

    def __init__(self, verbosity: int):
        super().__init__()
        self.verbosity = verbosity

    def filter(self, record: logging.LogRecord) -> bool:
        return is_own(record) or self.verbosity >= 2


def setup_logging(command: str, verbosity: int = 0, quiet: bool = False) -> None:
    """Terminal output for a CLI command: INFO (default), WARNING (``quiet``) or DEBUG (``-v``) on stderr."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for handler in list(root.handlers):
        if getattr(handler, "ser_console", False):
            root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.ser_console = True  # type: ignore[attr-defined]
    console.setLevel(logging.WARNING if quiet else logging.DEBUG if verbosity else logging.INFO)
    console.setFormatter(ConsoleFormatter(command))
    console.addFilter(OwnLines(verbosity))
    root.addHandler(console)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)


def add_log_file(path: Path) -> None:
    """Append every record (ser's at DEBUG, other libraries' at INFO) to ``path``, e.g. ``run_dir/ser.log``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():                 # a planted link would make ser append to a file outside the run
        path.unlink()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.ser_file = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    handler.addFilter(lambda r: is_own(r) or r.levelno >= logging.INFO)
    logging.getLogger().addHandler(handler)


def close_log_files() -> None:
    """Detach and close the log files a command opened (a notebook or test process runs many commands)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "ser_file", False):
            root.removeHandler(handler)
            handler.close()


def adopt_ray_loggers() -> None:
    """Route Ray's loggers through the root logger (ser.log) instead of Ray's own stderr handlers."""
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        logger.propagate = True


NATIVE_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\] ")
"""The prefix of a line Ray's C++ core writes straight to the process's stderr (glog style)."""


def divert_native_stderr() -> None:
    """Send Ray's C++ log lines (written to file descriptor 2, past Python's logging) to the ``ray.core`` logger,
    so they reach ser.log and not the terminal; every other byte written to fd 2 passes through.

    Only the CLI entry point calls this. Python's own ``sys.stderr`` (ser's lines, tqdm bars, error messages)
    is rebound to a copy of the original descriptor, so it never waits on the pipe.
    """
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = io.TextIOWrapper(io.FileIO(terminal, "w"), encoding="utf-8", errors="replace",
                                  line_buffering=True)
    native = logging.getLogger("ray.core")
    passthrough = os.fdopen(os.dup(terminal), "wb", buffering=0)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for raw in pipe:
                text = raw.decode("utf-8", "replace")
                if NATIVE_LINE.match(text):
                    native.info(text.rstrip("\n"))
                else:
                    passthrough.write(raw)

    threading.Thread(target=pump, name="ser-stderr", daemon=True).start()
