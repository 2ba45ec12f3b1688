"""Tracking speed of SINT, measured in one process against the in-run baseline of scoring one candidate
at a time (a trunk pass per candidate box, as a naive Siamese search does).

    python benchmarks/sint_fps.py [--device cuda] [--models sint_vgg16,sint_tiny] [--lockstep 16] [--compile]
        [--profile FOLDER]

Reports frames per second for one sequence and for ``--lockstep`` sequences advanced together (frames of
all sequences counted). ``--profile``: also ``torch.profiler`` over 20 frames of one sequence and of the lockstep
batch per model: the 25 costliest operators printed, a Chrome trace per run written to the folder. Frames are
synthetic 360x480 RGB (decoding excluded); CUDA is synchronised before each clock read. The baseline is timed on a
few candidates and scaled to the candidate count.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

import zoo
from datamodules.synthetic import SynthConfig, generate_video
from zoo.sint.sampling import candidate_count


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {torch.get_num_threads()} threads"
    except OSError:
        pass
    return platform.processor()


def track_fps(model, videos, frames: int, lockstep: int, **tracker_kwargs) -> tuple[float, int]:  # noqa: ANN001
    tracker = model.tracker(**tracker_kwargs)
    seqs = videos[:lockstep]
    tracker.init_batch([v.frames[0] for v in seqs], [v.target.boxes[0] for v in seqs])
    for t in range(1, 4):  # warm-up (and torch.compile)
        tracker.update_batch([v.frames[t] for v in seqs])
    device = "cuda" if model.mean.is_cuda else "cpu"
    sync(device)
    start = time.perf_counter()
    for t in range(frames):
        tracker.update_batch([v.frames[4 + t % (len(v.frames) - 4)] for v in seqs])
    sync(device)
    elapsed = time.perf_counter() - start
    width = seqs[0].frames[0].shape[1]
    candidates = candidate_count(width, tracker.radius, tracker.step, tracker.angles, len(tracker.scales),
                                 tracker.adaptive_radius)
    return frames * len(seqs) / elapsed, candidates


def profiled(step: Callable[[int], None], cuda: bool, folder: str, name: str, repeats: int = 20) -> None:
    """``torch.profiler`` over ``step(0) ... step(repeats - 1)``: the 25 costliest operators printed (GPU time on
    the GPU), the Chrome trace written to ``folder/<name>.json``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    device = "cuda" if cuda else "cpu"
    sync(device)
    with profile(activities=activities, record_shapes=True) as prof:
        for t in range(repeats):
            step(t)
        sync(device)
    print(f"--- profile: {name}, {repeats} steps")
    print(prof.key_averages().table(sort_by="cuda_time_total" if cuda else "cpu_time_total", row_limit=25))
    Path(folder).mkdir(parents=True, exist_ok=True)
    prof.export_chrome_trace(str(Path(folder) / f"{name}.json"))


def profile_tracking(model, videos, lockstep: int, folder: str, name: str, **tracker_kwargs) -> None:  # noqa: ANN001
    """:func:`profiled` over 20 tracked frames of ``lockstep`` sequences, after a warm-up."""
    tracker = model.tracker(**tracker_kwargs)
    seqs = videos[:lockstep]
    tracker.init_batch([v.frames[0] for v in seqs], [v.target.boxes[0] for v in seqs])
    for t in range(1, 4):
        tracker.update_batch([v.frames[t] for v in seqs])
    profiled(lambda t: tracker.update_batch([v.frames[4 + t % (len(v.frames) - 4)] for v in seqs]),
             model.mean.is_cuda, folder, name)


def one_candidate_at_a_time_fps(model, video, candidates: int, probes: int = 3, amp: bool = False) -> float:  # noqa: ANN001
    """Seconds per frame when each candidate gets its own trunk pass, from ``probes`` timed passes."""
    x, (factor,) = model.prepare([video.frames[1]])
    box = video.target.boxes[1]
    roi = torch.tensor([[0, box[0] * factor[0], box[1] * factor[1], (box[0] + box[2]) * factor[0],
                         (box[1] + box[3]) * factor[1]]], device=x.device)
    device = "cuda" if x.is_cuda else "cpu"
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
        model(x, roi)
        sync(device)
        start = time.perf_counter()
        for _ in range(probes):
            model(x, roi)
        sync(device)
    per_candidate = (time.perf_counter() - start) / probes
    return 1.0 / (per_candidate * candidates)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default="sint_vgg16,sint_tiny")
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--lockstep", type=int, default=16)
    p.add_argument("--compile", action="store_true", help="torch.compile the trunk")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast on GPU")
    p.add_argument("--profile", default=None, metavar="FOLDER", help="also profile, Chrome traces to FOLDER")
    a = p.parse_args()
    print(f"device: {device_name(a.device)}; torch {torch.__version__}")
    cfg = SynthConfig(height=360, width=480, num_frames=24)
    videos = [generate_video(0, i, cfg) for i in range(a.lockstep)]
    print(f"{'model':12s} {'mode':22s} {'fps':>9s} {'vs one-at-a-time':>17s}")
    for name in a.models.split(","):
        model = zoo.create_model(name, pretrained_backbone=False).to(a.device).eval()
        if a.compile:
            model.trunk = torch.compile(model.trunk)
        amp = a.device == "cuda" and not a.fp32
        frames = a.frames if (a.device == "cuda" or name != "sint_vgg16") else 2
        single, candidates = track_fps(model, videos, frames, 1, amp=amp, channels_last=amp)
        baseline = one_candidate_at_a_time_fps(model, videos[0], candidates, amp=amp)
        print(f"{name:12s} {'one sequence':22s} {single:9.2f} {single / baseline:16.1f}x")
        lock_frames = max(frames // 4, 2) if a.device == "cpu" else frames
        many, _ = track_fps(model, videos, lock_frames, a.lockstep, amp=amp, channels_last=amp)
        print(f"{name:12s} {f'{a.lockstep} in lockstep':22s} {many:9.2f} {many / baseline:16.1f}x")
        print(f"{name:12s} {'one candidate at a time':22s} {baseline:9.3f} {1.0:16.1f}x")
        if a.profile:
            for count in (1, a.lockstep):
                profile_tracking(model, videos, count, a.profile, f"{name}_x{count}", amp=amp, channels_last=amp)
        del model
        if a.device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
