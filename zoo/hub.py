"""Downloads into the zoo cache, sha256 checks and sidecars, and safe (weights-only) checkpoint reading."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import pickletools
import re
import socket
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from zoo.errors import CheckpointError, DownloadError

CHUNK = 1 << 20
SIDECAR_SUFFIX = ".sha256"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def zoo_home() -> Path:
    """The cache root: ``$ZOO_HOME``, default ``~/.cache/zoo``."""
    return Path(os.environ.get("ZOO_HOME", Path.home() / ".cache" / "zoo")).expanduser()


def is_offline() -> bool:
    """True when ``$ZOO_OFFLINE`` is set to anything but ``0``: nothing is downloaded."""
    return os.environ.get("ZOO_OFFLINE", "0") not in ("", "0")


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


def _file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 less the process umask."""
    try:  # Linux: read the umask without changing it (os.umask is process-wide, racy with threads)
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``: readers never see half a file.

    The file gets the mode a plain ``open()`` would give it (0o666 less the umask), not mkstemp's 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the sha256 of ``path`` is kept: ``<path>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write_sha256_sidecar(path: str | os.PathLike, digest: str | None = None) -> Path:
    """Write ``<path>.sha256`` atomically, as ``sha256sum`` does (``"<hex>  <name>\\n"``); ``digest`` saves
    hashing the file again when the caller has it. Returns the sidecar's path."""
    path = Path(path)
    digest = digest or sha256sum(path)
    side = sidecar_path(path)
    atomic_write_bytes(side, f"{digest}  {path.name}\n".encode())
    return side


def read_sha256_sidecar(path: str | os.PathLike) -> str | None:
    """The sha256 that ``<path>.sha256`` records, or None without a sidecar; a malformed one is a CheckpointError."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        fields = side.read_text(encoding="utf-8", errors="replace").split()
    except OSError as e:
        raise CheckpointError(f"{side}: cannot read the sha256 sidecar ({e.strerror or e})") from None
    if not fields or not _HEX64.fullmatch(fields[0]):
        raise CheckpointError(f"{side}: not a sha256 sidecar (expected '<64 hex digits>  {Path(path).name}')")
    return fields[0].lower()


def check_sha256_sidecar(path: str | os.PathLike) -> bool:
    """Check ``path`` against its sidecar when there is one (True); False without a sidecar."""
    expected = read_sha256_sidecar(path)
    if expected is None:
        return False
    actual = sha256sum(path)
    if actual != expected:
        raise CheckpointError(
            f"{path}: sha256 mismatch, the file is corrupt or was changed after it was saved "
            f"(expected {expected}, got {actual}; {sidecar_path(path)})"
        )
    return True


@contextlib.contextmanager
def _socket_timeout(timeout: float | None) -> Iterator[None]:
    # torch.hub's urlopen takes no timeout: it uses the default one, set here for the download only
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def download(
    url: str, dest: Path, sha256: str | None = None, timeout: float = 30.0, progress: bool = True
) -> Path:
    """Fetch ``url`` to ``dest`` with ``torch.hub.download_url_to_file``, atomically: the whole file's sha256
    is checked before it takes its final name.

    With ``ZOO_OFFLINE=1`` nothing is fetched. Any failure raises DownloadError naming the URL, the path
    where the file is expected (so it can be placed by hand) and its sha256.
    """
    dest = Path(dest)
    hint = f"place the file by hand at {dest}" + (f" (sha256 {sha256})" if sha256 else "")
    if is_offline():
        raise DownloadError(f"{dest} is not cached and ZOO_OFFLINE is set: download {url} and {hint}")
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.download")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _socket_timeout(timeout):
            torch.hub.download_url_to_file(url, str(tmp), hash_prefix=None, progress=progress)
        actual = sha256sum(tmp)
        if sha256 and actual != sha256.lower():
            raise DownloadError(f"{url}: downloaded file has sha256 {actual}, expected {sha256}; {hint}")
        os.replace(tmp, dest)
    except (OSError, ValueError) as e:
        reason = str(getattr(e, "reason", None) or e).strip()
        reason = reason.splitlines()[0] if reason else type(e).__name__
        raise DownloadError(f"could not download {url} ({reason}); {hint}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}


def _globals_in_pickles(f: IO[bytes], limit: int = 8) -> list[str]:
    """The globals (``module.name``) that the pickles at the start of ``f`` import; [] when ``f`` does not start
    with a well-formed pickle. Parsed with ``pickletools.genops``, which runs nothing."""
    found: list[str] = []
    for _ in range(limit):
        strings: list[str] = []
        memo: dict[int, str] = {}
        try:
            for op, arg, _pos in pickletools.genops(f):
                if op.name in _STRING_OPS:
                    strings.append(arg if isinstance(arg, str) else str(arg))
                elif op.name == "MEMOIZE" and strings:
                    memo[len(memo)] = strings[-1]
                elif op.name in _PUT_OPS and strings:
                    memo[int(arg)] = strings[-1]
                elif op.name in _GET_OPS and int(arg) in memo:
                    strings.append(memo[int(arg)])
                elif op.name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL":
                    found.append(".".join(strings[-2:]) if len(strings) >= 2 else "a Python global")
        except Exception:  # noqa: BLE001  (garbage: not a pickle from here on)
            break
    return found


def pickled_globals(path: str | os.PathLike) -> list[str]:
    """The Python globals a pickle-based file (a plain pickle, or torch's zip or legacy format) would import
    on load; [] for files that are not well-formed pickles (random bytes, text)."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                found: list[str] = []
                for member in z.namelist():
                    if member.endswith(".pkl"):
                        with z.open(member) as f:
                            found += _globals_in_pickles(f)
                return found
        with open(path, "rb") as f:
            return _globals_in_pickles(f)
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError):
        return []


def _why_unreadable(path: Path, error: BaseException) -> str:
    """A short reason for ``load_checkpoint_file``'s error: the format when it is not torch's, else the error."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"
    if not head:
        return "the file is empty"
    if not head.startswith(b"PK") and head[:1] != b"\x80":
        return f"not a torch file, it starts with {head[:10]!r}"
    text = str(error).strip()
    line = next((s.strip() for s in text.splitlines() if "Unsupported operand" in s), None)
    line = line or (text.splitlines()[0] if text else type(error).__name__)
    return f"{type(error).__name__}: {line[:200]}"


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with one-line errors: missing, failing its sha256 sidecar, not a
    checkpoint (random bytes, text, truncated), or holding code that would run on load.

    When ``<path>.sha256`` exists (the zoo writes one beside every checkpoint it saves) the file is checked
    against it before anything is deserialised.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    check_sha256_sidecar(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        refused = next((line for line in lines if "GLOBAL" in line), None)
        names = [] if refused else pickled_globals(path)
        if refused or names:
            detail = refused or f"GLOBAL {', '.join(dict.fromkeys(names))}"
            raise CheckpointError(
                f"{path}: refused, it holds Python objects that would run code on load ({detail}); "
                "the zoo loads weights only"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint, corrupt or truncated ({_why_unreadable(path, e)})"
                              ) from None
    except Exception as e:  # noqa: BLE001  (torch.load of garbage raises KeyError, IndexError, UnicodeError, ...)
        raise CheckpointError(f"{path}: not a readable checkpoint, corrupt or truncated ({_why_unreadable(path, e)})"
                              ) from None
