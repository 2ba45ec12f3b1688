"""A real 2-process DDP fit on CPU (gloo), run by tests/test_trainer.py as a script.

Usage: python tests/ddp_fit.py DATA_ROOT OUT_DIR. Each rank saves its parameters to OUT_DIR/rank{r}.pt.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

import zoo
from datamodules.ucf101 import UCF101DataModule
from zoo.trainer import build_trainer


class SaveParameters(pl.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank == 0:
            torch.save({n: p.detach().clone() for n, p in pl_module.named_parameters()}, self.out / "init.pt")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        params = {n: p.detach().clone() for n, p in pl_module.named_parameters()}
        torch.save(params, self.out / f"rank{trainer.global_rank}.pt")
        info = {"world_size": trainer.world_size, "strategy": type(trainer.strategy).__name__,
                "backend": torch.distributed.get_backend(), "global_step": trainer.global_step}
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(info))


def main(data: str, out: str) -> None:
    out_dir = Path(out)
    pl.seed_everything(0)
    model = zoo.create_model("clip_tiny", width=8)
    dm = UCF101DataModule(root=data, clip_len=8, stride=2, size=(32, 40), batch_size=4, num_workers=0)
    trainer = build_trainer(
        accelerator="cpu", devices=2, max_steps=4, limit_val_batches=0, loggers="", run_name="ddp",
        default_root_dir=str(out_dir), enable_progress_bar=False, enable_model_summary=False,
        callbacks=[SaveParameters(out_dir)],
    )
    trainer.fit(model, dm)


if __name__ == "__main__":
    main(*sys.argv[1:3])
