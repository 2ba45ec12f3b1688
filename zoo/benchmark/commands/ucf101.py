"""``zoo benchmark ucf101``: action recognition on UCF101's three splits, clip and video accuracy
(``zoo.benchmark.classification``)."""

from __future__ import annotations

from collections.abc import Sequence

DESCRIPTION = "score a clip classifier on UCF101's splits (clip/video accuracy, mean and std)"


def main(argv: Sequence[str]) -> int:
    from zoo.benchmark.classification import run_command

    return run_command("ucf101", argv)
