"""Square network inputs cut around a target: ``context`` times its width and height, resized."""

from __future__ import annotations

import cv2
import numpy as np


def crop_region(image: np.ndarray, centre: np.ndarray, size: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``size`` (w, h) region of an RGB image around ``centre`` (x, y), resized to ``out`` x ``out``
    (outside the frame: the mean colour). Returns the crop and (sx, sy), crop pixels per frame pixel."""
    sx, sy = out / max(size[0], 1e-6), out / max(size[1], 1e-6)
    x0, y0 = centre[0] - size[0] / 2, centre[1] - size[1] / 2
    matrix = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]], dtype=np.float64)
    fill = tuple(float(v) for v in image.reshape(-1, 3).mean(0))
    crop = cv2.warpAffine(image, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=fill)
    return crop, np.array([sx, sy])
