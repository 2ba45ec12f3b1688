"""Per-frame cost of the action detectors of ``zoo.two_in_one``, measured in one process: ROAD's SSD300 streams
(``ssd300_rgb``, ``ssd300_flow``), their late fusion (``two_stream_ssd``), Two-in-One (``two_in_one``) and
Two-in-One two-stream (``two_in_one_two_stream``); ``--tiny``: their CPU-size versions.

Per model: parameters (millions) and GFLOPs of the network on one 1 x 3 x S x S frame (and its flow image), counted
by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products; a multiply-add counts as 2
FLOPs; box decoding and NMS not counted). Per device: frames per second at batch 1 and batch N of the network
forward alone and of ``detect(images, flows)`` (forward, softmax, box decoding, per-class top-k and NMS: the
per-frame inference of ``zoo benchmark ucf101-24``), on the CPU in float32 and on the GPU (bf16 autocast,
synchronised before each clock read) when there is one. Ratios are against runs of the same process: params,
GFLOPs and time per frame against ``two_stream_ssd`` (Zhao & Snoek, CVPR 2019, abstract: Two-in-One needs about
half the computation and parameters of two-stream), time per frame against ``ssd300_rgb`` (the aim: Two-in-One
within 1.3x of the RGB stream). The flow images the flow models read are timed apart: DIS (fast preset, as
``zoo prepare flow``) from a 320 x 240 frame pair to a flow image on the CPU, one OpenCV thread.

Weights are random (nothing downloaded): ``detect`` then keeps up to ``top_k`` boxes of every class for NMS, a
heavier load than a trained model's. Absolute numbers depend on the machine, which is printed first.

    python benchmarks/detection_cost.py [--tiny] [--models a,b] [--batch N] [--repeats R] [--devices cpu,cuda]
                                        [--channels-last] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from video_decode import cpu_name  # this folder is on sys.path when the script runs

import zoo
from datamodules.flow_images import flow_image
from datamodules.synthetic import SynthConfig, generate_video
from zoo.hub import atomic_write_bytes
from zoo.two_in_one import TwoStreamSSD

MODELS = ("ssd300_rgb", "ssd300_flow", "two_stream_ssd", "two_in_one", "two_in_one_two_stream")
TINY = {"ssd300_rgb": "ssd_rgb_tiny", "ssd300_flow": "ssd_flow_tiny", "two_stream_ssd": "two_stream_ssd_tiny",
        "two_in_one": "two_in_one_tiny", "two_in_one_two_stream": "two_in_one_two_stream_tiny"}
TWO_STREAM, RGB, TWO_IN_ONE = "two_stream_ssd", "ssd300_rgb", "two_in_one"
AIM = 1.3  # Two-in-One's time per frame at most this many times the RGB stream's
UCF24_SIZE = (240, 320)  # (height, width) of UCF101's videos


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def device_name(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()}, bf16 autocast"
    n = torch.get_num_threads()
    return f"{cpu_name()}, {n} thread{'s' if n > 1 else ''}, float32"


def network(model: torch.nn.Module, images: torch.Tensor, flows: torch.Tensor) -> Any:
    """The forward pass alone (both streams of a two-stream model), no decoding or NMS."""
    if isinstance(model, TwoStreamSSD):
        return model.appearance(images, flows), model.motion(None, flows)
    return model(images, flows)


def inputs(batch: int, size: int, device: str, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """0..255 frames and flow images (values near 128, as flow JPEGs are) of ``batch`` x 3 x ``size`` x ``size``."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, size, size), generator=g).float()
    flows = torch.randint(96, 161, (batch, 3, size, size), generator=g).float()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return images.to(device).contiguous(memory_format=fmt), flows.to(device).contiguous(memory_format=fmt)


def gflops(model: torch.nn.Module) -> float:
    """GFLOPs (multiply-add = 2) of the network on one frame, float32 on the CPU."""
    images, flows = inputs(1, model.input_size, "cpu", False)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        network(model, images, flows)
    return counter.get_total_flops() / 1e9


def seconds(fn: Callable[[], Any], device: str) -> float:
    """Wall time of one call of ``fn`` (the device synchronised before and after)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def time_models(models: dict[str, torch.nn.Module], device: str, batch: int, repeats: int, warmup: int,
                channels_last: bool) -> dict[str, dict[str, float]]:
    """Frames per second of the network and of ``detect`` per model: the median of ``repeats`` calls after
    ``warmup``, the models taking turns call by call (a busy machine slows them all alike)."""
    calls = {}
    for role, model in models.items():
        images, flows = inputs(batch, model.input_size, device, channels_last)
        calls[role, "net_fps"] = lambda m=model, i=images, f=flows: network(m, i, f)
        calls[role, "detect_fps"] = lambda m=model, i=images, f=flows: m.detect(i, f)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        for turn in range(warmup + repeats):
            for key, fn in calls.items():
                t = seconds(fn, device)
                if turn >= warmup:
                    times[key].append(t)
    out: dict[str, dict[str, float]] = {role: {} for role in models}
    for (role, what), ts in times.items():
        out[role][what] = batch / float(np.median(ts))
    return out


def flow_fps(pairs: int) -> float:
    """Flow images per second: DIS (fast) from a 320 x 240 RGB pair, one OpenCV thread (restored after)."""
    cfg = SynthConfig(height=UCF24_SIZE[0], width=UCF24_SIZE[1], num_frames=pairs + 1)
    frames = generate_video(0, 0, cfg).frames
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        flow_image(frames[0], frames[1])  # warm-up: DIS's object and buffers
        start = time.perf_counter()
        for t in range(pairs):
            flow_image(frames[t], frames[t + 1])
        return pairs / (time.perf_counter() - start)
    finally:
        cv2.setNumThreads(threads)


def ratio(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{value / base:.2f}"


def run(a: argparse.Namespace) -> dict[str, Any]:
    roles = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = [m for m in roles if m not in MODELS]
    if unknown:
        raise SystemExit(f"detection_cost.py: unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    devices = [d.strip() for d in a.devices.split(",") if d.strip()]
    if "cuda" in devices and not torch.cuda.is_available():
        print("cuda: skipped (no GPU)")
        devices.remove("cuda")
    report: dict[str, Any] = {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "gpu": torch.cuda.get_device_name() if "cuda" in devices else None},
        "options": {k: v for k, v in vars(a).items() if k != "json"}, "seed": 0, "weights": "random",
        "tiny": a.tiny, "flops": "multiply-add = 2 FLOPs; network forward on one frame", "models": {}, "timing": [],
    }
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, python "
          f"{platform.python_version()}")
    models = {role: zoo.create_model(TINY[role] if a.tiny else role).eval() for role in roles}
    static = report["models"]
    for role, model in models.items():
        static[role] = {"model": TINY[role] if a.tiny else role, "input_size": model.input_size,
                        "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "gflops": gflops(model)}
    base = static.get(TWO_STREAM, {})
    print(f"\nGFLOPs per frame (multiply-add = 2; network only); ratios against {TWO_STREAM}")
    print(f"{'model':28s} {'size':>5s} {'params M':>9s} {'x 2-stream':>10s} {'GFLOPs':>8s} {'x 2-stream':>10s}")
    for row in static.values():
        print(f"{row['model']:28s} {row['input_size']:5d} {row['params_m']:9.2f} "
              f"{ratio(row['params_m'], base.get('params_m')):>10s} {row['gflops']:8.2f} "
              f"{ratio(row['gflops'], base.get('gflops')):>10s}")
    for device in devices:
        batch = a.batch or (32 if device == "cuda" else 4)
        repeats = a.repeats or (30 if device == "cuda" else 3)
        warmup = a.warmup if a.warmup is not None else (5 if device == "cuda" else 1)
        channels_last = a.channels_last and device == "cuda"
        sizes = sorted({1, batch})
        print(f"\n{device}: {device_name(device)}{', channels_last' if channels_last else ''}; frames/s: median "
              f"of {repeats} calls after {warmup} warm-up, models in turn; time per frame against {TWO_STREAM} and "
              f"{RGB}")
        print(f"{'model':28s} {'batch':>5s} {'net f/s':>9s} {'x 2-stream':>10s} {'x rgb':>6s} "
              f"{'detect f/s':>10s} {'x 2-stream':>10s} {'x rgb':>6s}")
        rows = {}
        for model in models.values():
            model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
        for b in sizes:
            timed = time_models(models, device, b, repeats, warmup, channels_last)
            rows.update({(role, b): r for role, r in timed.items()})
            for role in models:
                r, two, rgb = rows[role, b], rows.get((TWO_STREAM, b), {}), rows.get((RGB, b), {})
                times = {k: 1.0 / v for k, v in r.items()}
                print(f"{static[role]['model']:28s} {b:5d} {r['net_fps']:9.2f} "
                      f"{ratio(two.get('net_fps'), r['net_fps']):>10s} {ratio(rgb.get('net_fps'), r['net_fps']):>6s} "
                      f"{r['detect_fps']:10.2f} {ratio(two.get('detect_fps'), r['detect_fps']):>10s} "
                      f"{ratio(rgb.get('detect_fps'), r['detect_fps']):>6s}")
                report["timing"].append({"device": device, "batch": b, "model": static[role]["model"], "role": role,
                                         **r, **{f"{k[:-4]}_s_per_frame": v for k, v in times.items()}})
            if (TWO_IN_ONE, b) in rows and (RGB, b) in rows:
                mine, rgb = rows[TWO_IN_ONE, b], rows[RGB, b]
                net, det = rgb["net_fps"] / mine["net_fps"], rgb["detect_fps"] / mine["detect_fps"]
                print(f"  {static[TWO_IN_ONE]['model']} / {static[RGB]['model']} time per frame at batch {b}: network "
                      f"{net:.2f}x, detect {det:.2f}x (aim: at most {AIM}x)")
        for model in models.values():
            model.to("cpu", memory_format=torch.contiguous_format)
        if device == "cuda":
            torch.cuda.empty_cache()
    if a.flow_pairs:
        fps = flow_fps(a.flow_pairs)
        report["flow"] = {"method": "dis", "preset": "fast", "size": list(UCF24_SIZE), "opencv_threads": 1,
                          "fps": fps}
        print(f"\nflow images (DIS fast, {UCF24_SIZE[1]}x{UCF24_SIZE[0]} pair -> flow image, CPU, 1 OpenCV thread): "
              f"{fps:.1f} frames/s, needed per frame by every model but {RGB}")
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS), help=f"comma separated, of {', '.join(MODELS)}")
    p.add_argument("--tiny", action="store_true", help="the tiny (CPU-size) versions of the models")
    p.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None, help="the larger batch (default: 32 on GPU, 4 on CPU)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls (default: 30 on GPU, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first (default: 5 on GPU, 1 on CPU)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch (default: torch's, "
                   f"{torch.get_num_threads()} here; 1 on a machine busy with other work)")
    p.add_argument("--channels-last", action="store_true", help="channels_last model and inputs on the GPU")
    p.add_argument("--flow-pairs", type=int, default=20, help="frame pairs for the flow timing (0: skip it)")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the numbers to this JSON file")
    a = p.parse_args(argv)
    if (a.batch is not None and a.batch < 1) or (a.repeats is not None and a.repeats < 1):
        p.error("--batch and --repeats must be at least 1")
    if a.threads is not None:
        if a.threads < 1:
            p.error("--threads must be at least 1")
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    report = run(a)
    if a.json:
        atomic_write_bytes(Path(a.json), (json.dumps(report, indent=1) + "\n").encode())
        print(f"wrote {a.json}")
    return report


if __name__ == "__main__":
    main()
