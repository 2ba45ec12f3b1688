"""Downloads into the zoo cache, sha256 checks, and safe (weights-only) checkpoint reading."""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import torch

from zoo.errors import CheckpointError, DownloadError

CHUNK = 1 << 20


def zoo_home() -> Path:
    """The cache root: ``$ZOO_HOME``, default ``~/.cache/zoo``."""
    return Path(os.environ.get("ZOO_HOME", Path.home() / ".cache" / "zoo")).expanduser()


def sha256sum(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise CheckpointError unless ``path`` hashes to ``expected``; nothing is deserialised before this."""
    actual = sha256sum(path)
    if actual != expected.lower():
        raise CheckpointError(
            f"{path}: sha256 mismatch (expected {expected}, got {actual}); the file is corrupt or truncated, "
            "delete it and download again"
        )


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def download(url: str, dest: Path, sha256: str | None = None, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``dest`` atomically, checking the sha256 before the file takes its final name.

    With ``ZOO_OFFLINE=1`` nothing is fetched. Any failure raises DownloadError naming the URL, the path
    where the file is expected (so it can be placed by hand) and its sha256.
    """
    hint = f"place the file by hand at {dest}" + (f" (sha256 {sha256})" if sha256 else "")
    if os.environ.get("ZOO_OFFLINE", "0") not in ("", "0"):
        raise DownloadError(f"{dest} is not cached and ZOO_OFFLINE is set: download {url} and {hint}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if sha256 and digest.hexdigest() != sha256.lower():
            raise DownloadError(
                f"{url}: downloaded file has sha256 {digest.hexdigest()}, expected {sha256}; {hint}"
            )
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"could not download {url} ({reason}); {hint}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with one-line errors: missing, truncated, or code-running files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()
        detail = next((line.strip() for line in first if "GLOBAL" in line or "Unsupported" in line), first[0])
        raise CheckpointError(
            f"{path}: refused, it holds Python objects that would run code on load ({detail}); "
            "the zoo loads weights only"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint, corrupt or truncated ({reason})") from None
