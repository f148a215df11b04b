"""Atomic writes: a reader sees the old file or the new one, never half of one.

Every helper writes into a temporary sibling of the target (same folder, so the same file
system) and renames it over the target with :func:`os.replace`, which POSIX and Windows
make atomic. A write that fails or is interrupted leaves the target as it was and removes
the temporary file.

The temporary name keeps the target's suffix (``.state.npz.tmp.npz``), because some writers
pick the format from it (``numpy.savez`` appends ``.npz``, matplotlib's ``savefig`` reads
``.png``).

Example:
    >>> import tempfile, json
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = write_json_atomic(folder / "run.json", {"seed": 0})
    >>> json.loads((folder / "run.json").read_text())
    {'seed': 0}
    >>> sorted(p.name for p in folder.iterdir())  # no temporary file left behind
    ['run.json']
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_path",
    "save_npz_atomic",
    "write_bytes_atomic",
    "write_folder_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; on success it replaces ``path``.

    For writers that take a file name (``savefig``, safetensors' ``save_file``, pyarrow):
    write to the yielded path inside the ``with`` block.

    Args:
        path: The target file. Its folder must exist.
        fsync: Flush the file to disk before the rename (a crash right after the rename then
            cannot leave an empty file).

    Yields:
        The temporary path, ``.{name}.tmp{suffix}`` in the target's folder.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("hello")
        >>> target.read_text()
        'hello'
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp{target.suffix}")
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically and returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically and returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], payload: Any, *, indent: int = 2,
                      sort_keys: bool = False, newline: bool = True) -> Path:
    """Writes ``payload`` as JSON to ``path`` atomically and returns the path.

    Args:
        path: The target file.
        payload: Anything :func:`json.dumps` accepts.
        indent: JSON indentation.
        sort_keys: Sort object keys (stable files for diffs).
        newline: End the file with a newline.
    """
    text = json.dumps(payload, indent=indent, sort_keys=sort_keys)
    return write_text_atomic(path, text + "\n" if newline else text)


def save_npz_atomic(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> Path:
    """Saves ``arrays`` with :func:`numpy.savez` (no pickle) to ``path`` atomically.

    ``path`` should end in ``.npz``; numpy appends that suffix to names that lack it.
    """
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
    return Path(path)


@contextmanager
def write_folder_atomic(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary folder next to ``target``; on success it replaces ``target``.

    An existing ``target`` is first renamed aside and deleted only after the new folder is in
    place, so readers never see a half-written folder (at worst, for an instant, no folder).
    On error the temporary folder is removed and ``target`` is untouched.

    Args:
        target: The folder to (re)create. Its parent is created if missing.

    Yields:
        The temporary folder to write into.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        for f in tmp.iterdir():  # flush file contents before the rename makes them visible
            if f.is_file():
                _fsync(f)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.rename(target, old / target.name)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
