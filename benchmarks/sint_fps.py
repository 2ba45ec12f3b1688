"""Tracking speed of SINT, measured in one process against the in-run baseline of scoring one candidate
at a time (a trunk pass per candidate box, as a naive Siamese search does).

    python benchmarks/sint_fps.py [--device cuda] [--models sint_vgg16,sint_tiny] [--lockstep 16] [--compile]
        [--size 640x480] [--fixed-radius] [--decoding FRAMES] [--profile FOLDER]

Reports frames per second for one sequence and for ``--lockstep`` sequences advanced together (frames of all sequences
counted), each for the tracker's fused path and for the former one (``fused=False`` with copies that wait for the
device, the in-run "before"), and how many boxes the two paths share. ``--profile``: also ``torch.profiler`` over 20
frames of one sequence and of the lockstep batch per model: the 25 costliest operators printed, a Chrome trace per run
written to the folder, and on the GPU how often a frame makes the host wait, by source line. Frames are synthetic RGB
of ``--size`` (decoding excluded); CUDA is synchronised before each clock read. The baseline is timed on a few
candidates and scaled to the candidate count. ``--decoding FRAMES``: also ``zoo benchmark otb``'s two speeds (the
tracker alone, and with the JPEG frames read) over synthetic OTB-layout sequences, with 0 and 4 reading threads.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import zoo
from datamodules.synthetic import SynthConfig, generate_video, synthesize
from zoo.nn.transfer import waiting_copies
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
    if cuda:
        host_syncs(step, name)


def host_syncs(step: Callable[[int], None], name: str, repeats: int = 5) -> None:
    """How often ``step`` makes the host wait for the GPU (``torch.cuda.set_sync_debug_mode``), per step and by the
    source line that asked for it."""
    import warnings
    from collections import Counter

    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for t in range(repeats):
                step(t)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    where = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message))
    print(f"--- host synchronisations: {name}, {sum(where.values()) / repeats:.1f} per step; by line: "
          + ", ".join(f"{k} x{v / repeats:g}" for k, v in where.most_common(8)))


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
    p.add_argument("--size", default="640x480", help="frame width x height (OTB's largest: 640x480)")
    p.add_argument("--fixed-radius", action="store_true",
                   help="plain SINT's 30 px search radius (303 candidates) instead of the adaptive one (363 at 640)")
    p.add_argument("--decoding", type=int, default=0, metavar="FRAMES",
                   help="also run zoo benchmark otb over --lockstep JPEG sequences of FRAMES frames: the speed with "
                        "decoding, 0 and 4 reading threads")
    p.add_argument("--profile", default=None, metavar="FOLDER", help="also profile, Chrome traces to FOLDER")
    a = p.parse_args()
    print(f"device: {device_name(a.device)}; torch {torch.__version__}")
    width, height = (int(v) for v in a.size.split("x"))
    cfg = SynthConfig(height=height, width=width, num_frames=24)
    videos = [generate_video(0, i, cfg) for i in range(a.lockstep)]
    print(f"{'model':12s} {'mode':22s} {'path':9s} {'fps':>9s} {'vs one-at-a-time':>17s} {'vs former':>10s}")
    for name in a.models.split(","):
        model = zoo.create_model(name, pretrained_backbone=False).to(a.device).eval()
        if a.compile:
            model.trunk = torch.compile(model.trunk)
        amp = a.device == "cuda" and not a.fp32
        kw = dict(amp=amp, channels_last=amp, adaptive_radius=not a.fixed_radius)
        frames = a.frames if (a.device == "cuda" or name != "sint_vgg16") else 2
        lock_frames = max(frames // 4, 2) if a.device == "cpu" else frames
        track_fps(model, videos, 2, a.lockstep, **kw)  # warm-up, not counted: the first run is otherwise slower
        baseline = None
        for mode, count, n in (("one sequence", 1, frames), (f"{a.lockstep} in lockstep", a.lockstep, lock_frames)):
            former = None
            for fused in (False, True):
                with contextlib.nullcontext() if fused else waiting_copies():
                    fps, candidates = track_fps(model, videos, n, count, **kw, fused=fused)
                if baseline is None:
                    baseline = one_candidate_at_a_time_fps(model, videos[0], candidates, amp=amp)
                    print(f"{name}: {candidates} candidates per frame, {width} x {height} frames")
                former = former or fps
                path = "fused" if fused else "former"
                print(f"{name:12s} {mode:22s} {path:9s} {fps:9.2f} {fps / baseline:16.1f}x {fps / former:9.2f}x")
        print(f"{name:12s} {'one candidate at a time':22s} {'':9s} {baseline:9.3f} {1.0:16.1f}x")
        same, worst = same_boxes(model, videos, a.lockstep, min(frames, 20), **kw)
        print(f"{name:12s} fused vs former, {a.lockstep} sequences: {same:.1%} of boxes within 0.5 px, "
              f"largest difference {worst:.3g} px")
        if a.decoding:
            with tempfile.TemporaryDirectory() as tmp:
                root = synthesize("otb", Path(tmp) / "otb", num_videos=a.lockstep, seed=0,
                                  cfg=SynthConfig(height=height, width=width, num_frames=a.decoding))
                for workers in (0, 4):
                    for count in (1, a.lockstep):
                        alone, read = benchmark_speeds(model, root, Path(tmp) / f"out{workers}_{count}", count,
                                                       workers, **kw)
                        print(f"{name:12s} zoo benchmark otb, {count} in lockstep, {workers} reading threads: "
                              f"{alone:.2f} fps the tracker alone, {read:.2f} fps with the JPEG frames read")
        if a.profile:
            for count in (1, a.lockstep):
                for fused in (False, True):
                    label = f"{name}_x{count}_{'fused' if fused else 'former'}"
                    with contextlib.nullcontext() if fused else waiting_copies():
                        profile_tracking(model, videos, count, a.profile, label, **kw, fused=fused)
        del model
        if a.device == "cuda":
            torch.cuda.empty_cache()


def benchmark_speeds(model, root: Path, out: Path, lockstep: int, workers: int, **tracker_kwargs  # noqa: ANN001
                     ) -> tuple[float, float]:
    """``zoo benchmark otb``'s two speeds over the OTB-layout sequences at ``root`` (JPEG frames), ``lockstep``
    sequences at a time with ``workers`` reading threads: the tracker's own fps and the fps with the frames read."""
    from zoo.benchmark.tracking import benchmark_otb

    perf = benchmark_otb(model.tracker(**tracker_kwargs), root, out, subset="folders", batch_size=lockstep,
                         decode_workers=workers, name="sint", enable_progress_bar=False)["sint"]
    return perf["overall"]["speed_fps"], perf["meta"]["fps_with_decoding"]


def same_boxes(model, videos, lockstep: int, frames: int, **tracker_kwargs) -> tuple[float, float]:  # noqa: ANN001
    """The fused and the former path on the same frames: the share of boxes within 0.5 px and the largest
    difference (bf16 on the GPU rounds differently in the two; on the CPU in float32 they are equal)."""
    seqs = videos[:lockstep]
    boxes = []
    for fused in (False, True):
        tracker = model.tracker(fused=fused, **tracker_kwargs)
        tracker.init_batch([v.frames[0] for v in seqs], [v.target.boxes[0] for v in seqs])
        boxes.append(np.array([tracker.update_batch([v.frames[1 + t % (len(v.frames) - 1)] for v in seqs])
                               for t in range(frames)]))
    diff = np.abs(boxes[0] - boxes[1]).max(-1)
    return float((diff <= 0.5).mean()), float(diff.max())


if __name__ == "__main__":
    main()
