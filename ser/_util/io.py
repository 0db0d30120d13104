"""Small file helpers: atomic writes, safe file names, output-directory locks, strict YAML reading."""

from __future__ import annotations

import difflib
import errno
import hashlib
import json
import os
import re
import shutil
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
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise InputError(f"{target.parent} is not writable ({exc.strerror}): cannot write {target.name} "
                             f"there") from None
        raise _disk_full(exc, target, 0) if exc.errno == errno.ENOSPC else exc
    os.close(fd)
    try:
        try:
            yield Path(tmp)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise _disk_full(exc, target, os.path.getsize(tmp) if os.path.exists(tmp) else 0) from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)      # mkstemp creates 0600; finished files follow the umask
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


STAGED_PREFIX = ".staged-"
_COMPLETE = ".complete"
_STALE_TMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")         # what atomic_path's mkstemp names look like


@contextmanager
def file_set(out: str | os.PathLike) -> Iterator[Path]:
    """Write files that belong together (a result and its tables) into a hidden staging directory of ``out``;
    they replace the files of the same names in ``out`` only once all are written.

    A failure or a kill before that leaves ``out`` exactly as it was. The move itself is a list of renames
    recorded first in the staging directory, so a kill during it is finished by the next command that locks
    ``out`` (:func:`recover_file_sets`): a reader sees the old set or the new one, never a mix.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=STAGED_PREFIX, dir=out))
    try:
        yield stage
        files = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        with atomic_path(stage / _COMPLETE) as tmp:
            tmp.write_text("\n".join(files))
        _finish(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _finish(stage: Path, out: Path) -> None:
    """Move a complete staged set into ``out`` (what is already moved is skipped), then drop the stage."""
    for rel in filter(None, (stage / _COMPLETE).read_text().split("\n")):
        source = stage / rel
        if source.exists():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, out / rel)
    shutil.rmtree(stage, ignore_errors=True)


def recover_file_sets(out: Path) -> None:
    """Leave ``out`` as the last completed command left it: finish a set whose move a kill interrupted, drop
    sets that were never complete, and remove temporary files of killed writes (``.NAME.XXXXXXXX.tmp``)."""
    for stage in sorted(out.glob(f"{STAGED_PREFIX}*")):
        if (stage / _COMPLETE).is_file():
            _finish(stage, out)
        else:
            shutil.rmtree(stage, ignore_errors=True)
    for tmp in out.rglob("*.tmp"):
        if _STALE_TMP.match(tmp.name) and (tmp.is_file() or tmp.is_symlink()):
            tmp.unlink(missing_ok=True)


class DiskFull(OSError):
    """A write ran out of space; the message names the file, what it had written and what was free."""


def _disk_full(exc: OSError, target: Path, written: int) -> DiskFull:
    free = shutil.disk_usage(target.parent if target.parent.exists() else Path.cwd()).free
    return DiskFull(errno.ENOSPC, f"disk full writing {target} ({_size(written)} written when it failed, "
                                  f"{_size(free)} free on that file system); free space or use another --out")


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


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


def file_digest(path: str | os.PathLike) -> str:
    """A short SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def safe_name(value: object) -> str:
    """An id (fold, speaker, …) as one file-name component: percent-encoded, so ``/``, ``..`` and control
    characters cannot leave the directory; ``unsafe_name`` reverses it exactly."""
    name = quote(str(value), safe="-_.")
    return name.replace(".", "%2E") if set(name) <= {"."} else name


MAX_FILE_NAME = 120
"""File names derived from ids stay this short (file systems refuse names over 255 bytes)."""


def file_component(value: object) -> str:
    """An id as a file-name component: :func:`safe_name`, and past :data:`MAX_FILE_NAME` characters its head
    plus a hash of the whole, so two long ids never share a file."""
    name = safe_name(value)
    if len(name) <= MAX_FILE_NAME:
        return name
    return f"{name[:MAX_FILE_NAME - 17]}~{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def unsafe_name(name: str) -> str:
    return unquote(name)


def did_you_mean(key: str, allowed: list[str]) -> str:
    """``; did you mean 'KEY'?`` for the closest allowed key, or nothing when none is close."""
    close = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def check_keys(raw: object, allowed: list[str] | set[str], where: str) -> None:
    """Refuse keys outside ``allowed``, naming the first with its closest allowed key (``did you mean``)."""
    allowed = sorted(allowed)
    unknown = sorted(set(raw) - set(allowed), key=str)
    if unknown:
        raise InputError(f"{where}: unknown key '{unknown[0]}'{did_you_mean(unknown[0], allowed)} "
                         f"(allowed: {', '.join(allowed)})")


class InputError(ValueError):
    """Bad user input (a config, table, mapping or path); the message names the file and what is wrong."""


class DamagedFile(InputError):
    """A JSON output that does not parse (an interrupted write by an older ser, a hand edit): the message names it."""


def read_json(path: str | os.PathLike) -> Any:
    """The one JSON reader of ser's own outputs: the content, None when the file is missing, and a
    :class:`DamagedFile` naming it (and the fix) when it does not parse. Callers that can redo the work catch that."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, ValueError):
        raise DamagedFile(f"{path} is not valid JSON (damaged by an interrupted write?): rerun the command "
                          f"that wrote it") from None


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
        return _load_bounded(text, what, p)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "").split())
        if "\\t" in problem:                      # PyYAML prints a tab as \t
            problem += " (YAML indents with spaces, not tabs)"
        raise InputError(f"{what} {p}: invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{what} {p}: invalid YAML: {' '.join(str(exc).split())}") from None


MAX_YAML_NODES = 100_000
"""A config expands to at most this many values: anchors and aliases that multiply past it (a "billion laughs"
file) are refused before anything is expanded."""


def _load_bounded(text: str, what: str, path: Path) -> Any:
    """Compose the YAML node graph (aliases stay shared), count what it would expand to, then construct it."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_YAML_NODES:
            raise InputError(f"{what} {path}: its anchors and aliases expand to {size:,} values, more than "
                             f"{MAX_YAML_NODES:,}; refused before expanding it")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes ``node`` stands for once every alias is copied out (memoized per shared node)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1                                  # a node that contains itself counts once
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = size
    return size


class OutputLocked(RuntimeError):
    """Another live ser process holds the output directory."""


@contextmanager
def output_lock(out: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold ``out/.ser.lock`` while a command writes into ``out``.

    Creating the lock also proves ``out`` is a writable directory before any work starts; holding it, what
    a killed command left half-done is tidied (:func:`recover_file_sets`). A second
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
        recover_file_sets(out)
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
