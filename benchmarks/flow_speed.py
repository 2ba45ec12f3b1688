"""Optical-flow extraction speed per method (``zoo prepare flow``), measured in one process on real frames.

For DIS, Farneback and (with opencv-contrib) TV-L1 it prints frames per second of the flow alone on one OpenCV
thread, at the frames' 224 x 224 and resized to UCF101-24's 320 x 240, and of the whole ``prepare_flow`` run at
320 x 240 with ``--workers`` processes (JPEG read, flow, encode, atomic write), each with the ratio to Farneback
measured in the same run. Absolute numbers depend on the machine, which is printed first.

    python benchmarks/flow_speed.py [--frames GIF] [--workers 2] [--tvl1-pairs 12]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from video_decode import cpu_name  # this folder is on sys.path when the script runs

from datamodules.flow_images import METHODS, compute_flow, prepare_flow, tvl1_available

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "ucf101_clip" / "v_CricketShot_g04_c01_rgb.gif"
UCF24_SIZE = (240, 320)  # (height, width) of UCF101's videos



def read_gif(path: Path) -> np.ndarray:
    from PIL import Image, ImageSequence

    with Image.open(path) as gif:
        return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)])


def flow_fps(frames: np.ndarray, method: str, pairs: int) -> float:
    compute_flow(frames[0], frames[1], method)  # warm-up: the method's object and buffers
    pairs = min(pairs, len(frames) - 1)
    start = time.perf_counter()
    for t in range(pairs):
        compute_flow(frames[t], frames[t + 1], method)
    return pairs / (time.perf_counter() - start)


def prepare_fps(frames: np.ndarray, method: str, workers: int, videos: int) -> float:
    """Frames per second of ``prepare_flow`` over ``videos`` copies of the clip written as UCF101-24 JPEGs."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ucf24"
        for v in range(videos):
            folder = root / "rgb-images" / "CricketShot" / f"v_CricketShot_g04_c0{v + 1}"
            folder.mkdir(parents=True)
            for t, frame in enumerate(frames, 1):
                cv2.imwrite(str(folder / f"{t:05d}.jpg"), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        start = time.perf_counter()
        done, failed = prepare_flow(root, root / "flow", method, workers, progress=False)
        elapsed = time.perf_counter() - start
        assert done == videos and not failed, failed
    return videos * len(frames) / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", default=str(CLIP), help="an animated GIF of RGB frames")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tvl1-pairs", type=int, default=12, help="TV-L1 is slow on a CPU: time this many pairs")
    a = p.parse_args()
    cv2.setNumThreads(1)  # one thread per process, before any OpenCV pool exists (the workers fork from here)
    frames = read_gif(Path(a.frames))
    large = np.stack([cv2.resize(f, UCF24_SIZE[::-1], interpolation=cv2.INTER_LINEAR) for f in frames])
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, OpenCV {cv2.__version__}, python "
          f"{platform.python_version()}; {len(frames)} frames of {Path(a.frames).name}")
    methods = [m for m in METHODS if m != "tvl1" or tvl1_available()]
    if "tvl1" not in methods:
        print("tvl1: skipped (needs opencv-contrib: pip install opencv-contrib-python-headless)")
    rows = {}
    for method in methods:
        pairs = a.tvl1_pairs if method == "tvl1" else len(frames) - 1
        small = flow_fps(frames, method, pairs)
        big = flow_fps(large, method, pairs)
        whole = prepare_fps(large[: pairs + 1], method, a.workers, videos=2 * a.workers)
        rows[method] = (small, big, whole)
    base = rows["farneback"]
    print(f"{'method':10s} {'224x224 fps':>12s} {'x farneback':>12s} {'320x240 fps':>12s} {'x farneback':>12s} "
          f"{f'prepare, {a.workers} workers':>22s} {'x farneback':>12s}")
    for method, (small, big, whole) in rows.items():
        print(f"{method:10s} {small:12.1f} {small / base[0]:12.2f} {big:12.1f} {big / base[1]:12.2f} "
              f"{whole:22.1f} {whole / base[2]:12.2f}")


if __name__ == "__main__":
    main()
