"""``zoo predict --checkpoint C --video X.mp4``: the top classes of a video file with their probabilities, from a
clip classifier (``zoo.video_classifier.VideoClassifier.predict_video``); class names come from the checkpoint."""

from __future__ import annotations

import sys
from collections.abc import Sequence

SUPPORTED = "clip classifiers (ClipClassifier: clip_*; O3NClassifier; TwoStream: two_stream_*, spatial_*, temporal_*)"


def main(argv: Sequence[str]) -> int:
    import zoo
    from datamodules.eval_views import crops_text
    from zoo.commands import ArgumentParser, positive_int
    from zoo.errors import CheckpointError
    from zoo.video_classifier import VideoClassifier

    p = ArgumentParser(prog="zoo predict", description="Classify a video file with a clip classifier: the top "
                       "classes and their probabilities (softmax averaged over the clips and crops).")
    p.add_argument("--checkpoint", required=True, help="a classifier checkpoint (zoo fit, model.save)")
    p.add_argument("--video", required=True, help="a video file or a folder of frames")
    p.add_argument("--top", type=positive_int, default=5)
    p.add_argument("--clips", type=positive_int, default=10, help="clips spread over the video")
    p.add_argument("--crops", default="centre", choices=("centre", "3", "10"))
    p.add_argument("--backend", default="decord", choices=("decord", "pyav"))
    a = p.parse_args(argv)
    model = zoo.load(checkpoint_path=a.checkpoint)
    if not isinstance(model, VideoClassifier):
        raise CheckpointError(f"{a.checkpoint}: holds a {type(model).__name__}; zoo predict --video classifies with "
                              f"{SUPPORTED}")
    top = model.predict_video(a.video, top=a.top, clips=a.clips, crops=a.crops, backend=a.backend)
    if model.classes is None:
        print(f"zoo predict: {a.checkpoint} records no class names (saved before classifiers kept them, or never "
              "fitted on a dataset); classes are shown by number", file=sys.stderr)
    print(f"{a.video}: top {len(top)} of {model.hparams.num_classes} classes ({a.clips} clips, {crops_text(a.crops)})")
    width = max(len(name) for name, _ in top)
    for rank, (name, prob) in enumerate(top, 1):
        print(f"{rank:3d}. {name:{width}s}  {prob:.4f}")
    return 0
