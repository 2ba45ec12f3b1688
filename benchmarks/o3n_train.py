"""O3N training throughput on one GPU, and the share of it that the frame-store loader feeds, in one process.

Times the faithful ``o3n_alexnet`` training step (6 elements of 6 frames, dynamic images, 227 x 227 CaffeNet
branches, SGD) in float32 and in bf16 autocast, with frames shipped at 227 x 227 or at the frame store's
128 x 171 (resized on the GPU), then the questions/s of the DataLoader over a prepared frame store of
synthetic videos with ``--workers`` workers, and prints the ratio. Absolute numbers: the GPU is printed first.

    python benchmarks/o3n_train.py [--batch 64] [--steps 20] [--workers 8] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import zoo
from datamodules.frame_bank import FrameBank, sample_questions
from datamodules.frame_store import META
from datamodules.odd_one_out import OddOneOutQuestions
from datamodules.synthetic import SynthConfig, generate_video


def train_rate(  # noqa: ANN001
    model, batch: int, size: tuple[int, int], steps: int, amp: bool, device: str, bank: FrameBank | None = None
) -> float:
    """Questions/s of training steps on one fixed random batch, or on questions drawn from ``bank`` each step."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    g = torch.Generator(device=device).manual_seed(0)
    q = torch.randint(0, 256, (batch, 6, 6, 3, *size), dtype=torch.uint8, device=device, generator=g)
    y = torch.randint(0, 6, (batch,), device=device, generator=g)

    def step() -> None:
        nonlocal q, y
        if bank is not None:
            videos = torch.randint(len(bank.lengths), (batch,), device=device)
            q, y, _ = sample_questions(bank, videos, strategy="random")
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(q).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize() if device == "cuda" else None
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize() if device == "cuda" else None
    return batch * steps / (time.perf_counter() - start)


def synthetic_store(folder: Path, videos: int, size: tuple[int, int]) -> Path:
    """UCF101 split lists and a frame store of synthetic videos (no video files: the store is the source)."""
    lists = folder / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 Synthetic\r\n")
    rels = [f"Synthetic/v_Synthetic_g{i % 25 + 1:02d}_c{i // 25 + 1:02d}.avi" for i in range(videos)]
    (lists / "trainlist01.txt").write_text("".join(f"{r} 1\r\n" for r in rels))
    (lists / "testlist01.txt").write_text("".join(f"{r}\r\n" for r in rels[:1]))
    store = folder / "store"
    cfg = SynthConfig(height=size[0], width=size[1], num_frames=150)
    for i, rel in enumerate(rels):
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(store / (rel + ".npy"), generate_video(0, i, cfg).frames)
    (store / META).write_text(json.dumps({"size": list(size)}))
    return store


def loader_rate(folder: Path, store: Path, size: tuple[int, int], workers: int, batches: int, batch: int) -> float:
    ds = OddOneOutQuestions("ucf101", folder, train=True, size=size, frame_store=store, repeats=10_000)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True, pin_memory=True)
    it = iter(loader)
    for _ in range(3 * workers):  # past the batches prefetched while the workers started
        next(it)
    start = time.perf_counter()
    n = sum(next(it)["question"].shape[0] for _ in range(batches))
    rate = n / (time.perf_counter() - start)
    it._shutdown_workers()
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--workers", type=int, default=max((os.cpu_count() or 2) - 2, 1))
    p.add_argument("--videos", type=int, default=50)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--skip-train", action="store_true", help="only the loader")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; {os.cpu_count()} CPUs")
    torch.backends.cudnn.benchmark = True
    store_size = (128, 171)
    rates = {"bf16, 128x171 frames": float("nan")}
    for label, size, amp in () if a.skip_train else (
        ("fp32, 227 frames", (227, 227), False),
        ("bf16, 227 frames", (227, 227), True),
        ("bf16, 128x171 frames", store_size, True),
    ):
        model = zoo.create_model("o3n_alexnet", input_size=(227, 227)).to(device).train()
        model = model.to(memory_format=torch.channels_last) if device == "cuda" else model
        if a.compile:
            model = torch.compile(model)
        rates[label] = train_rate(model, a.batch, size, a.steps, amp and device == "cuda", device)
        speedup = rates[label] / rates["fp32, 227 frames"]
        print(f"train step, {label:22s} {rates[label]:9.1f} questions/s  ({speedup:.2f}x fp32)")
    with tempfile.TemporaryDirectory() as tmp:
        store = synthetic_store(Path(tmp), a.videos, store_size)
        feed = loader_rate(Path(tmp), store, store_size, a.workers, 4 * a.workers, a.batch)
        rels = sorted(str(p.relative_to(store))[: -len(".npy")] for p in store.rglob("*.npy"))
        bank = FrameBank(store, rels, device)
    gpu = rates["bf16, 128x171 frames"]
    print(f"frame-store loader, {a.workers} workers: {feed:.1f} questions/s = {feed / gpu:.2f} of the bf16 step's rate")
    videos = torch.randint(len(rels), (a.batch,), device=device)
    sample_questions(bank, videos)
    torch.cuda.synchronize() if device == "cuda" else None
    start = time.perf_counter()
    for _ in range(a.steps):
        sample_questions(bank, videos)
    torch.cuda.synchronize() if device == "cuda" else None
    drawn = a.batch * a.steps / (time.perf_counter() - start)
    print(f"questions built on the device from the frame bank: {drawn:.1f} questions/s = {drawn / gpu:.1f}x the step")
    if not a.skip_train:
        model = zoo.create_model("o3n_alexnet", input_size=(227, 227)).to(device).train()
        model = model.to(memory_format=torch.channels_last) if device == "cuda" else model
        if a.compile:
            model = torch.compile(model)
        fed = train_rate(model, a.batch, store_size, a.steps, device == "cuda", device, bank)
        print(f"train step fed by the frame bank, bf16:  {fed:9.1f} questions/s = {fed / gpu:.2f} of the bf16 step")


if __name__ == "__main__":
    main()
