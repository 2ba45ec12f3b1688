"""``zoo benchmark ucfsports``: spatio-temporal action detection on UCF-Sports (ACT's UCFSports-GT.pkl, one split):
frame-mAP and video-mAP of a detections file or of a detector run (``zoo.benchmark.action_detection``)."""

from __future__ import annotations

from collections.abc import Sequence

DESCRIPTION = "score action detections on UCF-Sports (frame-mAP, video-mAP), or run a detector"


def main(argv: Sequence[str]) -> int:
    from zoo.benchmark.action_detection import DATASETS, run_command

    return run_command(DATASETS["ucfsports"], argv)
