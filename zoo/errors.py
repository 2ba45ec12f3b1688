"""Errors the zoo raises for bad input: each message is one line that says what is wrong and where."""

from __future__ import annotations


class ZooError(Exception):
    """Base class: a user-facing, one-line message (the CLI prints it without a traceback)."""


class UnknownModelError(ZooError, LookupError):
    """A model or checkpoint name that is not registered."""


class CheckpointError(ZooError):
    """A checkpoint that is missing, corrupt, fails its hash, or would run code on load."""


class DownloadError(CheckpointError):
    """A file that could not be fetched: the message names the URL, the expected path and the sha256."""


class DatasetError(ZooError):
    """A missing dataset folder or a malformed annotation file (the message names the file and line)."""


class VideoReadError(ZooError):
    """A video that cannot be opened or decoded (the message names the file)."""


def parse_error(path: object, line_no: int, message: str) -> DatasetError:
    """A DatasetError pointing at ``path:line_no``."""
    return DatasetError(f"{path}:{line_no}: {message}")
