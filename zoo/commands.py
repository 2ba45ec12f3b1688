"""Argument parsing for the ``zoo`` command: parsers whose errors are one line, ``zoo: error: ...``."""

from __future__ import annotations

import argparse
from typing import NoReturn

from zoo.errors import ZooError


class UsageError(ZooError):
    """A bad command-line argument; the message names the option."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that raises UsageError (printed as one line by ``zoo``) instead of printing
    the usage and exiting, and shows each option's default in ``--help``."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _whole_number(text: str, minimum: int, words: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {words}, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of zero or more."""
    return _whole_number(text, 0, "zero or more")


def positive_int(text: str) -> int:
    """An argparse type: an integer above zero."""
    return _whole_number(text, 1, "above zero")


def devices(text: str) -> int | str:
    """An argparse type for ``--devices``: ``auto``, a count, or a comma-separated list of device indices."""
    text = text.strip()
    if text == "auto":
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if "," in text and parts and all(p.isdigit() for p in parts):
        return ",".join(parts)
    raise argparse.ArgumentTypeError(f"must be auto, a number of devices or a list such as 0,1; not {text!r}")
