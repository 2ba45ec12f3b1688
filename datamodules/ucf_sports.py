"""UCF-Sports in the ACT format (Kalogeiton et al. ICCV 2017): ``<root>/Frames/<Class>/<video>/%05d.jpg``, flow
``<root>/FlowBrox04/<Class>/<video>/%05d.jpg`` and ``<root>/UCFSports-GT.pkl``; one split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from datamodules.action_tubes import TubeAnnotations, read_act_gt
from datamodules.detection_frames import DetectionDataModule, FrameLayout
from datamodules.jhmdb import act_layout
from datamodules.ssd_transforms import SSD_SIZE


class UCFSportsDataModule(DetectionDataModule):
    """UCF-Sports (one split) from ``UCFSports-GT.pkl``."""

    def __init__(self, root: str = "data/synthetic/ucfsports", split: int = 1, inputs: str = "rgb",
                 flow_dir: str | None = "FlowBrox04", annotation_file: str | None = None,
                 ratios: str | Sequence[float] | None = "default", input_size: int = SSD_SIZE, augment: bool = True,
                 negate_flow_x: bool = True, on_missing: str = "raise", batch_size: int = 32, num_workers: int = 2,
                 on_error: str = "raise", seed: int = 0, pin_memory: bool = True) -> None:
        super().__init__(root, split, inputs, flow_dir, annotation_file, ratios, input_size, augment, negate_flow_x,
                         on_missing, batch_size, num_workers, on_error, seed, pin_memory)

    def layout(self) -> FrameLayout:
        return act_layout(self.hparams.root, "jpg", self.hparams.flow_dir or "FlowBrox04")

    def read_annotations(self) -> TubeAnnotations:
        hp = self.hparams
        path = Path(hp.annotation_file) if hp.annotation_file else Path(hp.root) / "UCFSports-GT.pkl"
        return read_act_gt(path, "ucfsports", hp.on_missing)
