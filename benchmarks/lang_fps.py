"""Tracking speed of the language trackers, one sequence against many in lockstep, in one process: Model I
(``lang_model_i_*``: the sentence grounded in every frame, all sequences in one forward pass), Model II
(``lang_model_ii_*``: the visual network, 3 scales of every sequence in one forward pass) and Model III
(``lang_model_iii_*``: Model II plus the lingual network with word attention on every whole frame).

    python benchmarks/lang_fps.py [--device cuda] [--models lang_model_i_vgg16,lang_model_iii_tiny]
        [--profile FOLDER]

Frames are synthetic 360x480 RGB (decoding excluded); CUDA is synchronised before each clock read; on the
GPU the network runs in bf16 autocast. Frames per second count the frames of all sequences, for the trackers as they
are ("now") and for the in-run baseline ("former": the sentence encoded every frame, and every
host-to-device copy waits for the device). ``--profile``: also
``torch.profiler`` over 20 frames of one sequence and of the lockstep batch per model (the costliest operators
printed, Chrome traces written to the folder).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from sint_fps import device_name, profiled, sync  # this folder is on sys.path when the script runs

import zoo
from datamodules.synthetic import SynthConfig, generate_video
from zoo.nn.text import Vocabulary
from zoo.nn.transfer import waiting_copies


def started(model, seqs, former: bool = False):  # noqa: ANN001, ANN201
    """A tracker of ``model`` started on ``seqs`` (sentence or first box) and warmed up on two frames; ``former``:
    the sentence encoded every frame (``cache_sentences=False``)."""
    tracker = model.tracker(cache_sentences=False) if former else model.tracker()
    if tracker.needs_sentence:
        tracker.init_batch([v.frames[0] for v in seqs], sentences=[v.target.sentence for v in seqs])
    else:
        tracker.init_batch([v.frames[0] for v in seqs], [v.target.boxes[0] for v in seqs])
    for t in range(1, 3):
        tracker.update_batch([v.frames[t] for v in seqs])
    return tracker


def track_fps(model, videos, frames: int, lockstep: int, device: str, former: bool = False) -> float:  # noqa: ANN001
    """Frames per second; ``former``: the path before the sentence cache and the non-waiting copies."""
    seqs = videos[:lockstep]
    with waiting_copies() if former else contextlib.nullcontext():
        tracker = started(model, seqs, former)
        sync(device)
        start = time.perf_counter()
        for t in range(frames):
            tracker.update_batch([v.frames[3 + t % (len(v.frames) - 3)] for v in seqs])
        sync(device)
    return frames * len(seqs) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default=",".join(f"lang_model_{m}_{size}" for size in ("vgg16", "tiny")
                                                for m in ("i", "ii", "iii")))
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--lockstep", type=int, default=16)
    p.add_argument("--profile", default=None, metavar="FOLDER", help="also profile, Chrome traces to FOLDER")
    a = p.parse_args()
    cfg = SynthConfig(height=360, width=480, num_frames=12)
    videos = [generate_video(3, i, cfg) for i in range(a.lockstep)]
    vocab = Vocabulary.build(v.target.sentence for v in videos).words[2:]
    print(f"device: {device_name(a.device)}; torch {torch.__version__}")
    print(f"{'model':22s} {'path':7s} {'1 sequence fps':>15s} {f'{a.lockstep} in lockstep fps':>22s} {'ratio':>7s}")
    for name in a.models.split(","):
        kwargs = {"lingual": {"vocab": vocab, "pretrained_backbone": False}}
        if not name.startswith("lang_model_i_"):
            kwargs["visual"] = {"pretrained_backbone": False}
        model = zoo.create_model(name, **kwargs).to(a.device).eval()
        track_fps(model, videos, 4, a.lockstep, a.device)  # warm-up, not counted: the first run is otherwise slower
        before = None
        for former in (True, False):
            single = track_fps(model, videos, a.frames, 1, a.device, former)
            many = track_fps(model, videos, max(a.frames // 4, 2), a.lockstep, a.device, former)
            before = before or (single, many)
            path = "former" if former else "now"
            print(f"{name:22s} {path:7s} {single:15.1f} {many:22.1f} {many / single:7.2f}"
                  f"   now / former: {single / before[0]:.2f}x one, {many / before[1]:.2f}x lockstep")
        if a.profile:
            for count in (1, a.lockstep):
                seqs = videos[:count]
                tracker = started(model, seqs)
                profiled(lambda t, tracker=tracker, seqs=seqs: tracker.update_batch(
                    [v.frames[3 + t % (len(v.frames) - 3)] for v in seqs]), a.device == "cuda", a.profile,
                    f"{name}_x{count}")


if __name__ == "__main__":
    main()
