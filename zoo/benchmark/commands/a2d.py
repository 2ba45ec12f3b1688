"""``zoo benchmark a2d``: segment the referred actors of A2D Sentences and score them (Gavrilyuk et al., CVPR
2018, Sec. 5.1: P@0.5..0.9, mAP, overall and mean IoU)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

DESCRIPTION = "segment A2D Sentences' referred actors and score them (P@K, mAP, IoU)"


def main(argv: Sequence[str]) -> int:
    from datamodules.a2d_sentences import A2DSentences
    from zoo.benchmark.referring import run_segmentation, segmentation_parser

    p = segmentation_parser("a2d", "Benchmark an actor-and-action segmentation model on A2D Sentences.")
    p.add_argument("--subset", default="test", choices=["train", "test"], help="videoset.csv subset")
    a = p.parse_args(argv)

    def dataset(model_hp: dict) -> A2DSentences:
        return A2DSentences(a.root, a.subset, model_hp["num_frames"], model_hp["frame_step"], model_hp["input_size"],
                            modality=model_hp["modality"])

    from datamodules.a2d_sentences import ANNOTATION, VIDEOSET
    from zoo.hub import sha256sum

    root = Path(a.root)
    protocol = {"dataset": "a2d", "root": str(root.resolve()), "subset": a.subset,
                "annotations_sha256": {f: sha256sum(root / f) for f in (VIDEOSET, ANNOTATION) if (root / f).is_file()}}
    return run_segmentation(p, a, dataset, protocol)
