"""UCF101-24 as released with ROAD (Singh et al. ICCV 2017) and used by Two-in-One (Zhao & Snoek CVPR 2019):
``<root>/rgb-images/<Class>/<video>/%05d.jpg`` (1-based), flow images under the same names in ``brox-images/``,
``fastOF-images/`` (Two-in-One's DIS flow) or any folder (``flow_dir``), and ``<root>/splitfiles/pyannot.pkl``
with ``trainlist01.txt`` / ``testlist01.txt`` beside it (the corrected annotations, gurkirt/corrected-UCF101-Annots).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from datamodules.action_tubes import TubeAnnotations, read_pyannot
from datamodules.detection_frames import DetectionDataModule, FrameLayout
from datamodules.ssd_transforms import SSD_SIZE


def ucf101_24_layout(root: str | Path, flow_dir: str = "fastOF-images") -> FrameLayout:
    """ROAD's folders: ``rgb-images/`` and the flow folder, both ``<Class>/<video>/%05d.jpg``."""
    return FrameLayout(Path(root), "rgb-images", "jpg", flow_dir, "jpg")


def read_ucf101_24(root: str | Path, annotation_file: str | Path | None = None, on_missing: str = "raise"
                   ) -> TubeAnnotations:
    """``<root>/splitfiles/pyannot.pkl`` (or ``annotation_file``) with the split lists beside it. The class names
    are ROAD's 24 unless a ``classes.txt`` (one name a line, as the synthetic writer leaves) lies beside the pickle."""
    path = Path(annotation_file) if annotation_file else Path(root) / "splitfiles" / "pyannot.pkl"
    return read_pyannot(path, on_missing=on_missing)


class UCF101_24DataModule(DetectionDataModule):
    """UCF101-24 split 1 (the only one); flow from ``fastOF-images/`` (what Two-in-One reads) unless ``flow_dir``
    says otherwise (``brox-images`` for ROAD's flow stream); frames sampled with ROAD's class-balancing ``ratios`` by
    default (every annotated frame when the classes are not UCF101-24's, e.g. synthetic data)."""

    default_ratios = "road"

    def __init__(self, root: str = "data/synthetic/ucf101-24", split: int = 1, inputs: str = "rgb",
                 flow_dir: str | None = "fastOF-images", annotation_file: str | None = None,
                 ratios: str | Sequence[float] | None = "default", input_size: int = SSD_SIZE, augment: bool = True,
                 negate_flow_x: bool = True, on_missing: str = "raise", batch_size: int = 32, num_workers: int = 2,
                 on_error: str = "raise", seed: int = 0, pin_memory: bool = True) -> None:
        super().__init__(root, split, inputs, flow_dir, annotation_file, ratios, input_size, augment, negate_flow_x,
                         on_missing, batch_size, num_workers, on_error, seed, pin_memory)

    def layout(self) -> FrameLayout:
        return ucf101_24_layout(self.hparams.root, self.hparams.flow_dir or "fastOF-images")

    def read_annotations(self) -> TubeAnnotations:
        return read_ucf101_24(self.hparams.root, self.hparams.annotation_file, self.hparams.on_missing)
