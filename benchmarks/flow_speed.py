"""Optical-flow extraction speed per method (``zoo prepare flow``), measured in one process on real frames.

For DIS, Farneback, TV-L1 in PyTorch and (with opencv-contrib) OpenCV's TV-L1 it prints frames per second of the
flow alone on one thread, at the frames' 224 x 224 and resized to UCF101-24's 320 x 240, and of the whole
``prepare_flow`` run at 320 x 240 with ``--workers`` processes (JPEG read, flow, encode, atomic write), each with the
ratio to Farneback measured in the same run. Then the batched PyTorch TV-L1 (``zoo.nn.tvl1``, what the two-stream
model runs on its device) in pairs per second at the two-stream frame size 340 x 256, per batch size, on the CPU
(all threads) and on ``--device`` when given, against one pair at a time on the CPU. Absolute numbers depend on the
machine, which is printed first.

    python benchmarks/flow_speed.py [--frames GIF] [--workers 2] [--tvl1-pairs 12] [--device cuda]
        [--batches 1 8] [--batched-only]
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
import torch
from video_decode import cpu_name  # this folder is on sys.path when the script runs

from datamodules.flow_images import METHODS, compute_flow, prepare_flow, tvl1_available
from zoo.nn.tvl1 import TVL1, tvl1_flow

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "ucf101_clip" / "v_CricketShot_g04_c01_rgb.gif"
UCF24_SIZE = (240, 320)  # (height, width) of UCF101's videos
TWO_STREAM_SIZE = (256, 340)  # the two-stream datamodule's frames



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


def batched_tvl1_pps(frames: np.ndarray, batch: int, device: str, rounds: int = 1, compiled: bool = False) -> float:
    """Pairs per second of ``zoo.nn.tvl1`` on batches of ``batch`` consecutive grey pairs on ``device``
    (``compiled``: ``TVL1(compile=True)``, warmed up on the whole batch first)."""
    grey = torch.from_numpy(np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])).float().to(device)
    n = len(grey) - 1
    index = torch.arange(batch) % n
    first, second = grey[index], grey[index + 1]
    settings = TVL1(check_every=1 if device == "cpu" else 10, compile=compiled)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    tvl1_flow(*(x if compiled else x[:1] for x in (first, second)), settings)  # warm-up (compilation)
    sync()
    start = time.perf_counter()
    for _ in range(rounds):
        tvl1_flow(first, second, settings)
    sync()
    return batch * rounds / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", default=str(CLIP), help="an animated GIF of RGB frames")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tvl1-pairs", type=int, default=12, help="TV-L1 is slow on a CPU: time this many pairs")
    p.add_argument("--device", default=None, help="also time the batched PyTorch TV-L1 here, such as cuda")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes of the batched TV-L1")
    p.add_argument("--batched-only", action="store_true", help="only the batched PyTorch TV-L1 table")
    a = p.parse_args()
    cv2.setNumThreads(1)  # one thread per process, before any OpenCV pool exists (the workers fork from here)
    frames = read_gif(Path(a.frames))
    large = np.stack([cv2.resize(f, UCF24_SIZE[::-1], interpolation=cv2.INTER_LINEAR) for f in frames])
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, OpenCV {cv2.__version__}, python "
          f"{platform.python_version()}; {len(frames)} frames of {Path(a.frames).name}")
    if not a.batched_only:
        per_method_table(frames, large, a.workers, a.tvl1_pairs)
    batched_table(frames, a.device, a.batches)


def per_method_table(frames: np.ndarray, large: np.ndarray, workers: int, tvl1_pairs: int) -> None:
    """Each method one pair at a time on one thread, and prepare_flow with ``workers`` processes."""
    methods = [m for m in METHODS if m != "tvl1" or tvl1_available()]
    if "tvl1" not in methods:
        print("tvl1: skipped (needs opencv-contrib: pip install opencv-contrib-python-headless)")
    rows = {}
    for method in methods:
        pairs = tvl1_pairs if method.startswith("tvl1") else len(frames) - 1
        small = flow_fps(frames, method, pairs)
        big = flow_fps(large, method, pairs)
        whole = prepare_fps(large[: pairs + 1], method, workers, videos=2 * workers)
        rows[method] = (small, big, whole)
    base = rows["farneback"]
    print(f"{'method':10s} {'224x224 fps':>12s} {'x farneback':>12s} {'320x240 fps':>12s} {'x farneback':>12s} "
          f"{f'prepare, {workers} workers':>22s} {'x farneback':>12s}")
    for method, (small, big, whole) in rows.items():
        print(f"{method:10s} {small:12.1f} {small / base[0]:12.2f} {big:12.1f} {big / base[1]:12.2f} "
              f"{whole:22.1f} {whole / base[2]:12.2f}")


def batched_table(frames: np.ndarray, device: str | None, batches: list[int]) -> None:
    """The batched PyTorch TV-L1 at the two-stream frame size, on the CPU and on ``device``."""
    two_stream = np.stack([cv2.resize(f, TWO_STREAM_SIZE[::-1], interpolation=cv2.INTER_LINEAR) for f in frames])
    torch.set_num_threads(os.cpu_count() or 1)
    one = batched_tvl1_pps(two_stream, 1, "cpu", rounds=2)
    devices = ["cpu"] + ([device] if device else [])
    if device and device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name(device)}")
    print(f"TV-L1 in PyTorch, {TWO_STREAM_SIZE[1]} x {TWO_STREAM_SIZE[0]}: pairs/s, and x one pair at a time on "
          f"the CPU ({one:.2f} pairs/s, {torch.get_num_threads()} threads)")
    for where in devices:
        for batch in batches if where != "cpu" or not device else batches[:1]:
            for compiled in (False, True) if where != "cpu" or not device else (False,):
                pps = batched_tvl1_pps(two_stream, batch, where, compiled=compiled)
                print(f"  {where:6s} batch {batch:4d} {'compiled' if compiled else 'eager':8s}: {pps:10.2f} pairs/s "
                      f"{pps / one:10.2f} x")


if __name__ == "__main__":
    main()
