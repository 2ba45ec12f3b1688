"""Decoding speed of the two video backends, measured in one process.

Prints, per video, seconds per clip (16 random frames, and 16 consecutive frames) for decord and PyAV
and the ratio PyAV / decord. Absolute numbers depend on the machine, which is printed first.

    python benchmarks/video_decode.py [VIDEO ...]   # default: ../shared/data/videos/*.mp4|avi
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import numpy as np

from datamodules.video import open_video

ROOT = Path(__file__).resolve().parents[1]


def seconds_per_clip(path: Path, backend: str, consecutive: bool, repeats: int = 5) -> float:
    rng = np.random.default_rng(0)
    with open_video(path, backend) as video:
        n = len(video)
        video.get_frames([0])  # open and index outside the timing
        start = time.perf_counter()
        for _ in range(repeats):
            if consecutive:
                first = int(rng.integers(0, max(n - 16, 1)))
                idx = np.arange(first, first + 16)
            else:
                idx = np.sort(rng.integers(0, n, 16))
            video.get_frames(idx)
        return (time.perf_counter() - start) / repeats


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(paths: list[str]) -> None:
    videos = [Path(p) for p in paths] or sorted(
        p for p in (ROOT.parent / "shared" / "data" / "videos").glob("*") if p.suffix in (".mp4", ".avi")
    )
    print(f"machine: {cpu_name()}, 1 decoding thread, python {platform.python_version()}")
    print(f"{'video':32s} {'clip':11s} {'decord s':>9s} {'pyav s':>9s} {'pyav/decord':>12s}")
    for path in videos:
        for consecutive in (False, True):
            d = seconds_per_clip(path, "decord", consecutive)
            a = seconds_per_clip(path, "pyav", consecutive)
            kind = "consecutive" if consecutive else "random"
            print(f"{path.name:32s} {kind:11s} {d:9.4f} {a:9.4f} {a / d:12.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
