"""Model references: a local directory or a Hugging Face hub id, and the exact version each one names.

``locate_model`` decides what a (fold-filled) ``model:`` value is, so a hub id in a ``{fold}`` template
works and a missing local directory is a clear error. ``model_version`` gives the resolved hub commit
hash (or a local directory's content fingerprint): it goes into run.json and into the infer stage's
signature, so a changed model reruns the stage.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
"""``name`` or ``org/name``: the shape of a hub repository id."""

WHOLE_FILE_BYTES = 64 << 20
"""Files up to this size are hashed whole; larger ones by size plus their first and last MiB."""


def is_local_path(ref: str) -> bool:
    """A reference written as a path (absolute, relative with ./ or ../, ~, or with more than one '/')."""
    return ref.startswith(("/", "./", "../", "~", ".\\")) or ref.count("/") > 1 or "\\" in ref


def locate_model(ref: str, what: str) -> str:
    """``ref`` unchanged when it is an existing local path or a hub id; a missing local path is an error."""
    if Path(ref).expanduser().exists():
        return str(Path(ref).expanduser())
    if is_local_path(ref) or not HUB_ID.match(ref):
        raise FileNotFoundError(f"{what} not found: {ref} (no such local path, and not a hub id 'org/name')")
    return ref


def fingerprint(path: Path) -> str:
    """A content hash of a local model file or directory (names, sizes and bytes; large files sampled)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        size = f.stat().st_size
        digest.update(f"{f.relative_to(path) if f != path else f.name}\0{size}\0".encode())
        with f.open("rb") as fh:
            if size <= WHOLE_FILE_BYTES:
                digest.update(fh.read())
            else:
                digest.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), 2)
                digest.update(fh.read())
    return f"sha256:{digest.hexdigest()[:16]}"


def hub_commit(repo_id: str, revision: str | None) -> str:
    """The commit a hub id and revision resolve to: asked of the hub, else read from the local cache;
    'unresolved:<revision>' when neither can tell (offline, never downloaded)."""
    try:
        from huggingface_hub import HfApi, constants

        try:
            return f"commit:{HfApi().model_info(repo_id, revision=revision).sha}"
        except Exception:  # offline, private, rate-limited: fall back to the cache
            ref = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / (revision or "main")
            if ref.is_file():
                return f"commit:{ref.read_text().strip()}"
    except ImportError:
        pass
    if revision and re.fullmatch(r"[0-9a-f]{40}", revision):
        return f"commit:{revision}"
    return f"unresolved:{revision or 'main'}"


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
HALF_PRECISION = ("float16", "bfloat16")
"""Stored weight types a CPU loads as fp32, at twice their size on disk."""


def model_bytes(ref: str, revision: str | None = None) -> int | None:
    """Bytes of a model's files on this machine (a local path, or a hub id's snapshot in the Hugging Face cache),
    weights stored in half precision (its ``config.json`` says so) counted twice, as a CPU loads them in fp32; None
    when it is not here yet (a hub model not downloaded)."""
    local = Path(ref).expanduser()
    if not local.exists():
        from huggingface_hub import constants

        repo = Path(constants.HF_HUB_CACHE) / f"models--{ref.replace('/', '--')}"
        pointer = repo / "refs" / (revision or "main")
        commit = pointer.read_text().strip() if pointer.is_file() else revision
        local = repo / "snapshots" / str(commit)
        if not commit or not local.is_dir():
            return None
    files = [local] if local.is_file() else [p for p in local.rglob("*") if p.is_file()]
    try:
        stored = json.loads((local / "config.json").read_text())
    except (OSError, ValueError):        # no config (a file, a CTranslate2 model), or one the loader will refuse
        stored = {}
    half = isinstance(stored, dict) and (stored.get("torch_dtype") or stored.get("dtype")) in HALF_PRECISION
    return sum(f.stat().st_size * (2 if half and f.suffix in WEIGHT_SUFFIXES else 1) for f in files)


def model_version(ref: str, revision: str | None = None) -> str:
    """What exactly ``ref`` names now: a local content fingerprint, or the hub commit it resolves to."""
    local = Path(ref).expanduser()
    if local.exists():
        return fingerprint(local)
    return hub_commit(ref, revision)
