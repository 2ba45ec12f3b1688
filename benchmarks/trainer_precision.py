"""The shared trainer on whatever accelerator is here: the precision it picks, and training speed of
the automatic choice against 32-true, measured in the same process.

    python benchmarks/trainer_precision.py [--steps 60] [--width 64] [--size 112]

Data are synthetic clips held in memory (no decoding), so the numbers are model and trainer speed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

import zoo
from datamodules.synthetic import MOTIONS, SynthConfig, generate_video
from zoo.trainer import build_trainer, default_precision


class Clips(Dataset):
    def __init__(self, n: int, size: int, clip_len: int = 8) -> None:
        cfg = SynthConfig(height=size, width=size, num_frames=clip_len)
        videos = [generate_video(0, i, cfg, MOTIONS[i % 7], ("still",)) for i in range(n)]
        self.x = torch.from_numpy(np.stack([v.frames for v in videos])).permute(0, 1, 4, 2, 3).contiguous()
        self.y = torch.tensor([v.label for v in videos])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"video": self.x[i], "label": self.y[i]}


class Timer(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == 10 and not hasattr(self, "t0"):  # after warm-up
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t0, self.first = time.perf_counter(), trainer.global_step

    def on_train_end(self, trainer, pl_module):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.steps_per_s = (trainer.global_step - self.first) / (time.perf_counter() - self.t0)


def run(precision: str | None, data: Clips, steps: int, width: int, batch: int) -> tuple[float, float, str]:
    pl.seed_everything(0)
    model = zoo.create_model("clip_tiny", width=width)
    timer = Timer()
    trainer = build_trainer(max_steps=steps, precision=precision, loggers="", enable_progress_bar=False,
                            enable_model_summary=False, enable_checkpointing=False, callbacks=[timer],
                            default_root_dir="/tmp/zoo_bench")
    trainer.fit(model, DataLoader(data, batch_size=batch, shuffle=True, drop_last=True))
    loss = float(trainer.callback_metrics["train/loss"])
    return timer.steps_per_s * batch, loss, str(trainer.precision)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--batch", type=int, default=32)
    a = p.parse_args()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"device: {device}; automatic precision: {default_precision()}")
    data = Clips(256, a.size)
    auto = run(None, data, a.steps, a.width, a.batch)
    full = run("32-true", data, a.steps, a.width, a.batch)
    print(f"automatic ({auto[2]}): {auto[0]:.1f} samples/s, final loss {auto[1]:.3f}")
    print(f"32-true:             {full[0]:.1f} samples/s, final loss {full[1]:.3f}")
    print(f"ratio automatic / 32-true: {auto[0] / full[0]:.2f}")


if __name__ == "__main__":
    main()
