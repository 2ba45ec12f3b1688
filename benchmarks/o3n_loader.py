"""How many odd-one-out questions per second the datamodule feeds, by frame source, in one process.

Builds (or takes) a UCF101-layout dataset, then times the training DataLoader (N + 1 = 6 elements of W = 6
frames, ``--workers`` workers, batch 32) reading with decord, with PyAV, and from the prepared frame store
(``zoo prepare``), and prints questions/s, the ratios and the share of an H200's AlexNet bf16 training rate
(about 7,500 questions/s, issue 5) that each source feeds. Absolute numbers depend on the machine, printed first.

    python benchmarks/o3n_loader.py [--root UCF101_ROOT] [--workers 2] [--batches 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from video_decode import cpu_name  # this folder is on sys.path when the script runs

from datamodules.action import read_action_split
from datamodules.frame_store import prepare_frame_store
from datamodules.odd_one_out import OddOneOutDataModule
from datamodules.synthetic import SynthConfig, synthesize

GPU_RATE = 7500.0  # questions/s of an AlexNet bf16 training step on an H200 (issue 5)


def questions_per_second(root: Path, batches: int, workers: int, size: tuple[int, int], **source) -> float:
    dm = OddOneOutDataModule(str(root), size=size, batch_size=32, num_workers=workers, repeats=50, **source)
    dm.setup("fit")
    loader = DataLoader(dm.train_set, batch_size=32, shuffle=True, num_workers=workers, drop_last=True)
    it = iter(loader)
    next(it)  # workers started and warm
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += next(it)["question"].shape[0]
    elapsed = time.perf_counter() - start
    it._shutdown_workers()
    return n / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=None, help="a UCF101-layout root (default: 24 synthetic 240x320 videos)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--size", default="227x227", help="question frame size for the video sources")
    p.add_argument("--store-size", default="128x171", help="frame size of the prepared store")
    p.add_argument("--sources", default="decord,pyav,store")
    a = p.parse_args()
    size = tuple(int(v) for v in a.size.split("x"))
    store_size = tuple(int(v) for v in a.store_size.split("x"))
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.root) if a.root else synthesize(
            "ucf101", Path(tmp) / "ucf101", 24, seed=0, cfg=SynthConfig(height=240, width=320, num_frames=150)
        )
        print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs; {a.workers} loader workers; dataset {root}")
        rates = {}
        for source in a.sources.split(","):
            if source == "store":
                items = [it for train in (True, False) for it in read_action_split("ucf101", root, 1, train)[1]]
                store = Path(tmp) / "store"
                t = time.perf_counter()
                prepare_frame_store([rel for rel, _ in items], root, store, store_size, workers=a.workers)
                print(f"frame store of {len(items)} videos at {a.store_size} built in {time.perf_counter() - t:.1f} s")
                rates[source] = questions_per_second(root, a.batches, a.workers, store_size, frame_store=str(store))
            else:
                rates[source] = questions_per_second(root, a.batches, a.workers, size, backend=source)
        base = rates.get("decord") or next(iter(rates.values()))
        print(f"{'source':8s} {'questions/s':>12s} {'vs decord':>10s} {'share of 7,500/s':>17s}")
        for source, rate in rates.items():
            print(f"{source:8s} {rate:12.1f} {rate / base:10.2f} {rate / GPU_RATE:17.3f}")


if __name__ == "__main__":
    main()
