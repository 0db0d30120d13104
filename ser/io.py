"""Small file helpers: atomic writes, safe file names, output-directory locks, strict YAML reading."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, unquote

import pandas as pd
import yaml


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)      # mkstemp creates 0600; finished files follow the umask
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def _json_default(o: Any) -> Any:
    """numpy scalars and arrays → plain Python for json.dumps."""
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _signature_part(o: Any) -> Any:
    """Dataclasses as their fields, arrays as lists, anything else (paths) as its string."""
    if is_dataclass(o) and not isinstance(o, type):
        return asdict(o)
    return o.tolist() if hasattr(o, "tolist") else str(o)


def signature(*parts: Any) -> str:
    """A short stable hash of JSON-able parts: what decides whether saved work is still valid."""
    blob = json.dumps(parts, sort_keys=True, default=_signature_part)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def safe_name(value: object) -> str:
    """An id (fold, speaker, …) as one file-name component: percent-encoded, so ``/``, ``..`` and control
    characters cannot leave the directory; ``unsafe_name`` reverses it exactly."""
    name = quote(str(value), safe="-_.")
    return name.replace(".", "%2E") if set(name) <= {"."} else name


def unsafe_name(name: str) -> str:
    return unquote(name)


class InputError(ValueError):
    """Bad user input (a config, table, mapping or path); the message names the file and what is wrong."""


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys (the last one would silently win)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen[key] = True
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def read_yaml(path: str | os.PathLike, what: str) -> Any:
    """Parse a YAML file; every failure is an :class:`InputError` naming ``what``, the file and the line."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {p} is a directory, not a YAML file")
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise InputError(f"{what} {p} does not exist") from None
    except OSError as exc:
        raise InputError(f"{what} {p}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{what} {p} is not a text file") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "").split())
        if "\\t" in problem:                      # PyYAML prints a tab as \t
            problem += " (YAML indents with spaces, not tabs)"
        raise InputError(f"{what} {p}: invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{what} {p}: invalid YAML: {' '.join(str(exc).split())}") from None


class OutputLocked(RuntimeError):
    """Another live ser process holds the output directory."""


@contextmanager
def output_lock(out: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold ``out/.ser.lock`` while a command writes into ``out``.

    Creating the lock also proves ``out`` is a writable directory before any work starts. A second
    run on the same directory is refused with the holder's pid, host, command and start time; a
    lock left by a process that is gone (same host, pid not running) is stale and taken over.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create it ({exc.strerror})") from None
    lock = out / ".ser.lock"
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(lock)
            if holder is None or _stale(holder):
                lock.unlink(missing_ok=True)
                continue
            raise OutputLocked(f"{out} is in use by pid {holder['pid']} on {holder['host']} "
                               f"(ser {holder['command']}, started {holder['started']}); wait for it to finish, "
                               f"or use another --out") from None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise InputError(f"--out {out} is not writable ({exc.strerror})") from None
            raise
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record))
        break
    else:
        raise OutputLocked(f"{out}: could not take the lock {lock}")
    try:
        yield lock
    finally:
        if _read_lock(lock) == record:
            lock.unlink(missing_ok=True)


def _read_lock(lock: Path) -> dict | None:
    try:
        holder = json.loads(lock.read_text())
        return holder if isinstance(holder, dict) and {"pid", "host", "command", "started"} <= set(holder) else None
    except (OSError, ValueError):
        return None


def _stale(holder: dict) -> bool:
    """A lock is stale when its process, on this host, no longer runs."""
    if holder["host"] != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
