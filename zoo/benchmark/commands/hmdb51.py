"""``zoo benchmark hmdb51``: action recognition on HMDB51's three splits, clip and video accuracy
(``zoo.benchmark.classification``)."""

from __future__ import annotations

from collections.abc import Sequence

DESCRIPTION = "score a clip classifier on HMDB51's splits (clip/video accuracy, mean and std)"


def main(argv: Sequence[str]) -> int:
    from zoo.benchmark.classification import run_command

    return run_command("hmdb51", argv)
