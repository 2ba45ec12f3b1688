"""Clips per second of actor-and-action segmentation from a sentence (Gavrilyuk et al., CVPR 2018), training and
inference, against its own video trunk (I3D to Mixed_4f, the bound the model cannot beat) in the same process.

    python benchmarks/actor_action_speed.py [--device cuda] [--model actor_action_i3d] [--batch 8]

Clips are random uint8 (B, 3, T, S, S) at the model's size (16 x 512 x 512 for ``actor_action_i3d``), sentences
of 8 words; data loading is excluded. On the GPU the model runs in bf16 autocast; CUDA is synchronised before
each clock read. For scale: an S3D at 16 x 224 x 224 runs about 950 clips/s at batch 8 on an H200.
"""

from __future__ import annotations

import argparse
import time

import torch
from sint_fps import device_name, sync  # this folder is on sys.path when the script runs

import zoo

WORDS = "the man in a red shirt is jumping on the left".split()


def timed(fn, device: str, repeats: int) -> float:  # noqa: ANN001
    fn()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default="actor_action_i3d")
    p.add_argument("--batch", type=int, default=8 if torch.cuda.is_available() else 1)
    p.add_argument("--repeats", type=int, default=10 if torch.cuda.is_available() else 2)
    a = p.parse_args()
    model = zoo.create_model(a.model, vocab=WORDS).to(a.device)
    hp = model.hparams
    clip = torch.randint(0, 256, (a.batch, 3, hp.num_frames, hp.input_size, hp.input_size), dtype=torch.uint8,
                         device=a.device)
    sentences = [" ".join(WORDS[: 4 + i % 5]) for i in range(a.batch)]
    masks = (torch.rand(a.batch, hp.input_size, hp.input_size, device=a.device) > 0.8).float()
    amp = dict(device_type=torch.device(a.device).type, dtype=torch.bfloat16, enabled=a.device == "cuda")
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], 1e-4)

    def train_step() -> None:
        with torch.autocast(**amp):
            loss = model.loss(model(clip, model.tokens(sentences)), masks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer() -> None:
        with torch.no_grad(), torch.autocast(**amp):
            model.segment(clip, sentences)

    def trunk() -> None:
        with torch.no_grad(), torch.autocast(**amp):
            model.encoder(clip.float() / 127.5 - 1)

    model.train()
    t_train = timed(train_step, a.device, a.repeats)
    model.eval()
    t_infer = timed(infer, a.device, a.repeats)
    t_trunk = timed(trunk, a.device, a.repeats)
    print(f"{a.model}, batch {a.batch}, {hp.num_frames} x {hp.input_size} x {hp.input_size}, {device_name(a.device)}"
          f"{', bf16 autocast' if a.device == 'cuda' else ''}")
    print(f"  training   {a.batch / t_train:8.2f} clips/s")
    print(f"  inference  {a.batch / t_infer:8.2f} clips/s  ({t_trunk / t_infer:.2f} of the trunk-only speed, "
          f"{a.batch / t_trunk:.2f} clips/s)")


if __name__ == "__main__":
    main()
