"""Clips per second of ``zoo benchmark ucf101`` (decoding included), from the video files and from a frame store,
against a naive loop in the same process (each clip decoded by its own reader and scored alone).

    python benchmarks/classification_speed.py [--root UCF101] [--model clip_tiny] [--clips 10] [--workers 2]
        [--flow-method tvl1_torch]

Two-stream models (``--model temporal_tiny --size 64x64``, the model's crop) compute their flow from each clip:
on the CPU (``--flow-method dis``) or on the model's device (``tvl1_torch``).

Without ``--root`` a synthetic UCF101 (``zoo synth --format ucf101``: 56 videos of 48 frames at 120 x 160) is written
to a temporary folder; split 1's test list is scored (28 videos) with an untrained model of ``--model`` at the
frame size ``--size``. The frame store is built first (``zoo prepare``) and its time is printed apart, not counted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import zoo
from datamodules.action import read_action_split
from datamodules.eval_views import eval_clip_indices
from datamodules.frame_store import prepare_frame_store
from datamodules.video import open_video
from zoo.benchmark.classification import benchmark_classification
from zoo.cli import quiet_lightning


def naive(model: torch.nn.Module, root: Path, items: list[tuple[str, int]], clips: int, size: tuple[int, int]
          ) -> float:
    """Clips/s of the plain loop: a reader per clip, one clip per forward pass."""
    spec = model.eval_clip_spec()
    n = 0
    start = time.perf_counter()
    with torch.no_grad():
        for rel, _ in items:
            with open_video(root / rel) as video:
                length = len(video)
            for row in eval_clip_indices(spec, length, clips):
                with open_video(root / rel, size=size) as video:
                    frames = video.get_frames(row)
                clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)[None]
                model.clip_logits(clip.to(model.device))
                n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--root", default=None, help="a UCF101 root (default: a synthetic one in a temporary folder)")
    p.add_argument("--model", default="clip_tiny")
    p.add_argument("--size", default="112x112", help="HEIGHTxWIDTH of the network input")
    p.add_argument("--clips", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--videos", type=int, default=56, help="synthetic videos (without --root)")
    p.add_argument("--flow-method", default=None, help="two-stream models: how their flow is computed")
    a = p.parse_args()
    quiet_lightning()
    size = tuple(int(v) for v in a.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.root is None:
            from datamodules.synthetic import SynthConfig, synthesize

            root = synthesize("ucf101", tmp / "ucf101", a.videos, 0, SynthConfig(height=120, width=160, num_frames=48))
        else:
            root = Path(a.root)
        classes, items = read_action_split("ucf101", root, 1, False)
        items = [(rel, label) for rel, label in items if (root / rel).is_file()]
        torch.manual_seed(0)
        sampling = {"size": list(size), **({"flow_method": a.flow_method} if a.flow_method else {})}
        extra = {"crop_size": size[0]} if a.model.startswith(("two_stream", "spatial", "temporal")) else {}
        model = zoo.create_model(a.model, num_classes=len(classes), clip_sampling=sampling, **extra).eval()
        ckpt = model.save(tmp / "model.pt")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        common = dict(splits=[1], clips=a.clips, num_workers=a.workers, batch_size=4, devices=1)
        report = benchmark_classification("ucf101", [str(ckpt)], str(root), out=str(tmp / "files"), **common)
        files = report["clips_per_second"][1]
        t0 = time.perf_counter()
        prepare_frame_store([rel for rel, _ in items], root, tmp / "store", size=size, workers=a.workers)
        store_seconds = time.perf_counter() - t0
        report = benchmark_classification("ucf101", [str(ckpt)], str(root), out=str(tmp / "store_run"),
                                          frame_store=str(tmp / "store"), **common)
        stored = report["clips_per_second"][1]
        plain = naive(model.to(device), root, items, a.clips, size)
    flow = f", flow {a.flow_method}" if a.flow_method else ""
    print(f"{a.model} at {size[0]}x{size[1]}{flow}, {a.clips} clips x centre crop, {len(items)} videos, {a.workers} "
          f"workers, {device}")
    print(f"  zoo benchmark, video files:  {files:9.1f} clips/s  ({files / plain:.2f}x the naive loop)")
    print(f"  zoo benchmark, frame store:  {stored:9.1f} clips/s  ({stored / plain:.2f}x; store built in "
          f"{store_seconds:.1f} s, not counted)")
    print(f"  naive loop (reader per clip): {plain:8.1f} clips/s")


if __name__ == "__main__":
    main()
