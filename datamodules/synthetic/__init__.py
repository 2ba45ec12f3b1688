"""Synthetic videos in the real datasets' formats: the zoo's built-in default data."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from datamodules.synthetic.generator import (
    MOTIONS,
    PALETTE,
    SHAPES,
    TUBE_CLASSES,
    ObjectTrack,
    SynthConfig,
    SyntheticVideo,
    TubeVideo,
    generate_actor_video,
    generate_tube_video,
    generate_video,
)
from datamodules.synthetic.writers import (
    write_a2d,
    write_alov,
    write_jhmdb,
    write_jhmdb_sentences,
    write_otb,
    write_otb99lang,
    write_referit,
    write_ucf101,
    write_ucf101_24,
    write_ucfsports,
)
from zoo.errors import DatasetError

WRITERS = {"otb": write_otb, "otb99lang": write_otb99lang, "alov": write_alov, "ucf101": write_ucf101,
           "a2d": write_a2d, "jhmdb-sentences": write_jhmdb_sentences, "referit": write_referit,
           "ucf101-24": write_ucf101_24, "jhmdb": write_jhmdb, "ucfsports": write_ucfsports}
ACTOR_FORMATS = ("a2d", "jhmdb-sentences")
# action-tube formats and their generate_tube_video options: UCF101-24 is untrimmed with one or two actors; J-HMDB
# clips are trimmed to the action with one actor, UCF-Sports's too with one or two
TUBE_FORMATS: dict[str, dict] = {
    "ucf101-24": {"actors": (1, 2), "trimmed": False},
    "jhmdb": {"actors": (1, 1), "trimmed": True},
    "ucfsports": {"actors": (1, 2), "trimmed": True},
}


def generate_videos(num_videos: int, seed: int = 0, cfg: SynthConfig | None = None, action: bool = False,
                    actors: bool = False, tubes: dict | None = None) -> Iterator[SyntheticVideo]:
    """Videos 0..num_videos-1 of ``seed``. For ``action`` data the target's motion cycles through
    MOTIONS (balanced classes) and the distractors stand still, so the label is the one motion seen. For
    ``actors`` (referring segmentation) every object is an actor in view with a sentence that names its look and
    action, and actor 1 looks like actor 0 (``generate_actor_video``). ``tubes``: action-tube videos
    (``generate_tube_video`` with these options), their class cycling through the classes (balanced)."""
    for i in range(num_videos):
        if tubes is not None:
            classes = tubes.get("classes", TUBE_CLASSES)
            yield generate_tube_video(seed, i, cfg, label=i % len(classes), **tubes)
        elif actors:
            yield generate_actor_video(seed, i, cfg)
        elif action:
            yield generate_video(seed, i, cfg, MOTIONS[i % len(MOTIONS)], distractor_motions=("still",))
        else:
            yield generate_video(seed, i, cfg)


def synthesize(
    fmt: str,
    out: str | os.PathLike,
    num_videos: int = 20,
    seed: int = 0,
    cfg: SynthConfig | None = None,
    overwrite: bool = False,
    progress: bool = False,
    classes: Sequence[str] | None = None,
    flow_method: str = "dis",
) -> Path:
    """Write ``num_videos`` synthetic videos in format ``fmt`` (one of ``WRITERS``) to ``out``. Action-tube formats
    (``TUBE_FORMATS``) take ``classes`` (motions; default ``TUBE_CLASSES``) and the ``flow_method`` of their flow
    images (``dis`` or ``farneback``; DIS misses much of the motion of the flat synthetic actors, Farneback less).

    The dataset is written beside ``out`` and moved into place at the end, so ``out`` never holds half
    a dataset. An existing non-empty ``out`` is an error unless ``overwrite``. ``progress``: a bar on stderr.
    """
    if fmt not in WRITERS:
        raise DatasetError(f"unknown synthetic format {fmt!r}; choose one of {', '.join(WRITERS)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DatasetError(f"{out}: folder exists and is not empty (use --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        tubes = TUBE_FORMATS.get(fmt)
        if tubes is not None and classes is not None:
            tubes = {**tubes, "classes": tuple(classes)}
        videos = generate_videos(num_videos, seed, cfg, action=fmt == "ucf101", actors=fmt in ACTOR_FORMATS,
                                 tubes=tubes)
        if progress:
            from tqdm import tqdm

            videos = tqdm(videos, total=num_videos, desc=f"zoo synth {fmt}", unit="video", leave=False)
        WRITERS[fmt](videos, tmp, **({"flow_method": flow_method} if fmt in TUBE_FORMATS else {}))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


__all__ = [
    "MOTIONS", "PALETTE", "SHAPES", "TUBE_CLASSES", "TUBE_FORMATS", "ObjectTrack", "SynthConfig", "SyntheticVideo",
    "TubeVideo", "WRITERS", "generate_actor_video", "generate_tube_video", "generate_video", "generate_videos",
    "synthesize",
]
