"""Writes ``tvl1_opencv.npz``: OpenCV's own TV-L1 flow of real frame pairs, the reference ``zoo.nn.tvl1`` is tested
against (tests/test_tvl1.py). It needs opencv-contrib, which the zoo does not install:

    pip install --target /tmp/cvc opencv-contrib-python-headless==5.0.0.93
    PYTHONPATH=/tmp/cvc:. python tests/reference/make_tvl1_opencv.py

Pairs: frames 10 -> 11 of ../shared/data/ucf101_clip/v_CricketShot_g04_c01_rgb.gif (224 x 224, small motion) and
frames 20 -> 22 of ../shared/data/videos/bikes.mp4 shrunk to 120 x 282 with INTER_AREA (about 2 pixels of motion).
Stored: the grey frames (uint8, cv2.COLOR_RGB2GRAY) and the flow of ``DualTVL1OpticalFlow_create()`` at its
defaults (float16 pixels, x then y), with the OpenCV version.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import decord
import numpy as np
from PIL import Image, ImageSequence

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1].parent / "shared" / "data"


def main() -> None:
    with Image.open(DATA / "ucf101_clip" / "v_CricketShot_g04_c01_rgb.gif") as gif:
        cricket = [np.asarray(f.convert("RGB")) for i, f in enumerate(ImageSequence.Iterator(gif)) if i in (10, 11)]
    video = decord.VideoReader(str(DATA / "videos" / "bikes.mp4"))
    bikes = [cv2.resize(video[i].asnumpy(), (282, 120), interpolation=cv2.INTER_AREA) for i in (20, 22)]
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    out = {"opencv": np.array(cv2.__version__)}
    for name, (a, b) in (("cricket", cricket), ("bikes", bikes)):
        ga, gb = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (a, b))
        out[f"{name}_first"], out[f"{name}_second"] = ga, gb
        out[f"{name}_flow"] = tvl1.calc(ga, gb, None).astype(np.float16)
    np.savez_compressed(HERE / "tvl1_opencv.npz", **out)


if __name__ == "__main__":
    main()
