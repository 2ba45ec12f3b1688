"""Square network inputs: regions cut around a target (``context`` times its width and height, resized), and
whole frames fitted into a square.

Regions as the official ``util/im_processing.crop_and_pad_bboxes_subtract_mean`` cuts them: outside the frame
black (zero padding before the mean is subtracted), width and height resized separately to the square, output
pixel centres on the region's pixel-centre grid (``skimage.transform.resize``'s). Choice: the region's corners
are not rounded to whole pixels (the official code rounds them; a sub-pixel difference).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from zoo.nn.transfer import to_device


def frame_size(frame: np.ndarray | torch.Tensor) -> tuple[int, int]:
    """(H, W) of an (H, W, 3) array or a (3, H, W) tensor."""
    h, w = frame.shape[-2:] if isinstance(frame, torch.Tensor) else frame.shape[:2]
    return int(h), int(w)


def fit_square(h: int, w: int, size: int, keep_aspect: bool = True) -> tuple[float, float, float, float]:
    """Where an h x w frame goes in a size x size network input: (sx, sy, px, py), so that input pixel =
    frame pixel * s + p. ``keep_aspect``: one scale for both axes, centred between zero padding (the official
    ``resize_and_pad``); else stretched to the square."""
    if not keep_aspect:
        return size / w, size / h, 0.0, 0.0
    scale = min(size / h, size / w)
    nh, nw = int(round(h * scale)), int(round(w * scale))
    return nw / w, nh / h, float((size - nw) // 2), float((size - nh) // 2)


def crop_region(image: np.ndarray, centre: np.ndarray, size: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``size`` (w, h) region of an RGB image around ``centre`` (x, y), resized to ``out`` x ``out``
    (outside the frame: black). Returns the crop and (sx, sy), crop pixels per frame pixel."""
    sx, sy = out / max(size[0], 1e-6), out / max(size[1], 1e-6)
    x0, y0 = centre[0] - size[0] / 2, centre[1] - size[1] / 2
    # output pixel u samples x0 + (u + 0.5) / sx - 0.5, as skimage.transform.resize samples a cut region
    matrix = np.array([[sx, 0, (0.5 - x0) * sx - 0.5], [0, sy, (0.5 - y0) * sy - 0.5]], dtype=np.float64)
    crop = cv2.warpAffine(image, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))
    return crop, np.array([sx, sy])


def crop_regions(frames: list[torch.Tensor], centres: np.ndarray, sizes: np.ndarray, index: list[int], out: int
                 ) -> torch.Tensor:
    """Many ``crop_region`` crops in one ``roi_align`` where the frames are (on the GPU): ``frames`` are
    (3, H, W) uint8 tensors, crop ``i`` is of ``frames[index[i]]``. Outside the frame: black."""
    from torchvision.ops import roi_align

    device = frames[0].device
    crops = []
    for f, group in _groups(frames, index):
        x = f.float()[None]
        c, s = to_device(centres[group], device), to_device(sizes[group], device)
        # aligned roi_align samples bin u at x0 + (u + 0.5) * size / out - 0.5, where crop_region samples
        start = c - s / 2
        boxes = torch.cat([torch.zeros(len(group), 1, device=device), start, start + s], 1)
        part = roi_align(x, boxes.float(), output_size=(out, out), spatial_scale=1.0, sampling_ratio=1,
                         aligned=True)
        crops.append((group, part))
    result = torch.empty((len(index), 3, out, out), device=device)
    for group, part in crops:
        result[group] = part
    return result.clamp_(0, 255).round_().to(torch.uint8)


def _groups(frames: list[torch.Tensor], index: list[int]):  # noqa: ANN202
    by_frame: dict[int, list[int]] = {}
    for i, k in enumerate(index):
        by_frame.setdefault(k, []).append(i)
    return [(frames[k], rows) for k, rows in by_frame.items()]
