"""``zoo benchmark jhmdb-sentences``: segment J-HMDB Sentences' actors with a model trained on A2D Sentences and
score them (Gavrilyuk et al., CVPR 2018, Sec. 5.2)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

DESCRIPTION = "segment J-HMDB Sentences' actors (a model trained on A2D) and score them"


def main(argv: Sequence[str]) -> int:
    from datamodules.jhmdb_sentences import SAMPLE_MODES, JHMDBSentences
    from zoo.benchmark.referring import run_segmentation, segmentation_parser

    p = segmentation_parser("jhmdb-sentences", "Benchmark an actor-and-action segmentation model on J-HMDB "
                            "Sentences (evaluation only).")
    p.add_argument("--samples", default="three", choices=SAMPLE_MODES, help="three: MTTR's list of 3 frames per "
                   "video (as MTTR and ReferFormer report); all: every frame with a puppet mask")
    p.add_argument("--metadata", help="MTTR's jhmdb_sentences_samples_metadata.json (default: in --root)")
    a = p.parse_args(argv)

    def dataset(model_hp: dict) -> JHMDBSentences:
        return JHMDBSentences(a.root, a.samples, a.metadata, model_hp["num_frames"], model_hp["frame_step"],
                              model_hp["input_size"], modality=model_hp["modality"])

    from datamodules.jhmdb_sentences import ANNOTATION, METADATA
    from zoo.hub import sha256sum

    root = Path(a.root)
    listed = Path(a.metadata) if a.metadata else root / METADATA
    files = [listed] if a.samples == "three" else [root / ANNOTATION]
    protocol = {"dataset": "jhmdb-sentences", "root": str(root.resolve()), "samples": a.samples,
                "lists_sha256": {str(f.resolve()): sha256sum(f) for f in files if f.is_file()}}
    return run_segmentation(p, a, dataset, protocol)
