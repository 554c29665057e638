"""Preprocess-once array caches next to the raw data, written atomically and verified on load.

A cache is one ``.npz`` file holding the arrays plus a JSON ``__meta__`` entry: the cache format
version, the raw files' sizes and modification times, each array's shape/dtype and a CRC-32 of
its bytes. ``cached_arrays`` rebuilds the cache whenever it is missing, unreadable (truncated,
not a zip), stale (raw file changed) or corrupt (shape or checksum mismatch), and writes the new
one to a temporary file in the same directory that is then renamed over the old one, so a
crash mid-write never leaves a partial cache under the final name.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CACHE_VERSION = 1


class CorruptDataError(ValueError):
    """A raw data file exists but cannot be parsed; the message names the file and the problem."""


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a).view(np.uint8).reshape(-1)) & 0xFFFFFFFF


def _source_stamp(sources: Sequence[Path]) -> list[list]:
    out = []
    for s in sources:
        st = Path(s).stat()
        out.append([Path(s).name, st.st_size, int(st.st_mtime)])
    return out


def _meta(arrays: dict[str, np.ndarray], sources: Sequence[Path], key: str) -> dict:
    return {
        "version": CACHE_VERSION,
        "key": key,
        "sources": _source_stamp(sources),
        "arrays": {
            n: {"shape": list(a.shape), "dtype": str(a.dtype), "crc32": _crc(a)}
            for n, a in arrays.items()
        },
    }


def load_verified(path: Path, sources: Sequence[Path], key: str = "") -> dict[str, np.ndarray]:
    """The cached arrays, or ``ValueError`` saying why the cache cannot be trusted."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"PK\x03\x04":  # np.load would call anything else "pickled data"
            raise ValueError(f"not an .npz archive (starts with {magic!r}): corrupt or truncated")
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            if "__meta__" not in files:
                raise ValueError("no __meta__ entry")
            meta = json.loads(bytes(z["__meta__"]).decode())
            arrays = {n: z[n] for n in meta.get("arrays", {})}
    except ValueError:
        raise
    except Exception as e:  # zipfile.BadZipFile, EOFError, OSError, KeyError on a partial file
        raise ValueError(f"unreadable ({type(e).__name__}: {e})") from e
    if meta.get("version") != CACHE_VERSION or meta.get("key") != key:
        raise ValueError("written by another version or with other options")
    if meta.get("sources") != _source_stamp(sources):
        raise ValueError("the raw files changed since it was written")
    for n, info in meta["arrays"].items():
        a = arrays[n]
        if list(a.shape) != info["shape"] or str(a.dtype) != info["dtype"]:
            raise ValueError(f"array {n!r} has shape {list(a.shape)}, expected {info['shape']}")
        if _crc(a) != info["crc32"]:
            raise ValueError(f"array {n!r} fails its checksum")
    return arrays


def write_atomic(
    path: Path, arrays: dict[str, np.ndarray], sources: Sequence[Path], key: str = ""
) -> None:
    """Write ``arrays`` (+ metadata) to ``path`` via a temporary file and ``os.replace``."""
    meta = np.frombuffer(json.dumps(_meta(arrays, sources, key)).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __meta__=meta, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_arrays(
    path: Path,
    build: Callable[[], dict[str, np.ndarray]],
    sources: Sequence[Path],
    *,
    key: str = "",
) -> dict[str, np.ndarray]:
    """Arrays from the verified cache at ``path``, else ``build()`` them and (re)write the cache.

    ``sources``: the raw files the arrays are computed from (their size and mtime are recorded);
    ``key``: a string naming the preprocessing options, so a cache built with others is rebuilt.
    An unwritable directory only costs the cache (a warning), never the run.
    """
    path = Path(path)
    if path.exists():
        try:
            return load_verified(path, sources, key)
        except ValueError as e:
            log.warning("cache %s is not usable (%s); rebuilding it from the raw files", path, e)
    arrays = build()
    try:
        write_atomic(path, arrays, sources, key)
    except OSError as e:
        log.warning("could not write the cache %s (%s); continuing without it", path, e)
    return arrays
