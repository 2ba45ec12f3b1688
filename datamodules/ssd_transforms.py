"""The SSD training augmentation of ROAD and Two-in-One for an RGB frame, its optical-flow image and its boxes, with
``torchvision.transforms.v2``.

Order and parameters follow Two-in-One ``utils/augmentations.py`` (``SSDAugmentation``, from ssd.pytorch; ROAD's is
the same for one image): photometric distortion (RGB only), expand / zoom-out (p 0.5, ratio 1..4, filled with the
mean), IoU-constrained random crop (SSD's sampler), horizontal mirror (p 0.5), resize to ``size`` x ``size``
(bilinear, no antialiasing, as ``cv2.resize``). As Two-in-One does by concatenating the two into one 6-channel
image, every geometric transform is drawn once and applied to the RGB frame, the flow image and the boxes alike.

Conventions here: images are float32 ``(3, H, W)`` tensors in RGB channel order and 0..255 (not clipped after
the photometric distortion, as in the official code; the model subtracts the mean); boxes ``(K, 4)`` x1, y1, x2, y2
in pixels of the image they come with. The fill of the zoom-out is the official mean, ssd.pytorch's
(104, 117, 123) in BGR order, i.e. ``RGB_MEAN`` = (123, 117, 104), and 128 for the flow channels (Two-in-One's
``SSDAugmentation(mean=(104, 117, 123, 128, 128, 128))``).

Flow and the mirror: Two-in-One's ``RandomMirror`` flips the 6-channel image without touching the flow values, so
its mirrored flow still points the old way. Here a mirror negates the horizontal flow as the issue asks
(``negate_flow_x=True``; ``False`` reproduces Two-in-One). The flow JPEGs that ROAD and Two-in-One read store
(x, y, magnitude) as (R, G, B), each ``round(128 + u * 128 / bound)`` clipped to 0..255 (gurkirt/optical-flow
``getFlowAsImage``, see ``datamodules.flow_images``), so negating ``u`` is ``v -> 2 * 128 - v`` on channel 0 of the
image read in RGB order, clipped to 0..255 (``flow_centre``, ``flow_x_channel``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

RGB_MEAN = (123.0, 117.0, 104.0)  # ssd.pytorch / ROAD / Two-in-One (104, 117, 123) BGR, in RGB order
FLOW_MEAN = (128.0, 128.0, 128.0)  # Two-in-One SSDAugmentation's mean of the flow channels
SSD_SIZE = 300
# ssd.pytorch RandomSampleCrop: keep the image, or a crop whose IoU with every box is at least 0.1 ... 0.9, or any
SAMPLE_OPTIONS: tuple[float | None, ...] = (None, 0.1, 0.3, 0.5, 0.7, 0.9, float("-inf"))
_SWAPS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def _uniform(low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand(()))


def _coin(p: float = 0.5) -> bool:
    return bool(torch.rand(()) < p)


class PhotometricDistort(v2.Transform):
    """ssd.pytorch's ``PhotometricDistort`` on a float RGB image in 0..255 (apply it to the RGB frame only):
    brightness ``+U(-delta, delta)`` (p 0.5); then contrast ``*U(0.5, 1.5)`` (p 0.5) either before or after the HSV
    step (p 0.5 each); HSV step: saturation ``*U(0.5, 1.5)`` (p 0.5), hue ``+U(-18, 18)`` degrees (p 0.5); last a
    random channel permutation (p 0.5). No clipping, as in the official code."""

    def __init__(self, brightness_delta: float = 32.0, contrast: tuple[float, float] = (0.5, 1.5),
                 saturation: tuple[float, float] = (0.5, 1.5), hue_delta: float = 18.0, p: float = 0.5) -> None:
        super().__init__()
        self.brightness_delta, self.contrast, self.saturation = brightness_delta, contrast, saturation
        self.hue_delta, self.p = hue_delta, p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        p = self.p
        params = {
            "brightness": _uniform(-self.brightness_delta, self.brightness_delta) if _coin(p) else None,
            "contrast_first": _coin(0.5),
            "contrast": _uniform(*self.contrast) if _coin(p) else None,
            "saturation": _uniform(*self.saturation) if _coin(p) else None,
            "hue": _uniform(-self.hue_delta, self.hue_delta) if _coin(p) else None,
        }
        params["swap"] = _SWAPS[int(torch.randint(len(_SWAPS), ()))] if _coin(p) else None
        return params

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        x = inpt.as_subclass(torch.Tensor).float().clone()
        if params["brightness"] is not None:
            x += params["brightness"]
        if params["contrast_first"] and params["contrast"] is not None:
            x *= params["contrast"]
        if params["saturation"] is not None or params["hue"] is not None:
            hsv = cv2.cvtColor(np.ascontiguousarray(x.permute(1, 2, 0).numpy()), cv2.COLOR_RGB2HSV)
            if params["saturation"] is not None:
                hsv[..., 1] *= params["saturation"]
            if params["hue"] is not None:
                hsv[..., 0] = np.mod(hsv[..., 0] + params["hue"], 360.0)
            x = torch.from_numpy(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)).permute(2, 0, 1).contiguous()
        if not params["contrast_first"] and params["contrast"] is not None:
            x *= params["contrast"]
        if params["swap"] is not None:
            x = x[list(params["swap"])]
        return tv_tensors.wrap(x, like=inpt)


class SSDIoUCrop(v2.RandomIoUCrop):
    """ssd.pytorch's ``RandomSampleCrop``: pick an option of ``SAMPLE_OPTIONS`` (None keeps the image), then up to
    ``trials`` crops of 0.3..1 of each side with aspect ratio 0.5..2 until one overlaps EVERY box by at least the
    option's IoU and holds at least one box centre (else draw the option again). torchvision's ``RandomIoUCrop``
    asks the IoU of only one box; here it is all of them, as the official code. Boxes whose centre falls outside
    the crop are zeroed (drop them with ``SanitizeBoundingBoxes``)."""

    def __init__(self, options: Sequence[float | None] = SAMPLE_OPTIONS, trials: int = 50, min_scale: float = 0.3,
                 min_aspect_ratio: float = 0.5, max_aspect_ratio: float = 2.0) -> None:
        super().__init__(min_scale=min_scale, min_aspect_ratio=min_aspect_ratio, max_aspect_ratio=max_aspect_ratio,
                         trials=trials)
        self.options = list(options)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        boxes = next(x for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes)).as_subclass(torch.Tensor)
        if len(boxes) == 0:
            return {}
        boxes = boxes.double()
        while True:
            option = self.options[int(torch.randint(len(self.options), ()))]
            if option is None:
                return {}
            for _ in range(self.trials):
                w = _uniform(self.min_scale * width, width)
                h = _uniform(self.min_scale * height, height)
                if not self.min_aspect_ratio <= h / w <= self.max_aspect_ratio:
                    continue
                left, top = _uniform(0, width - w), _uniform(0, height - h)
                rect = [int(left), int(top), int(left + w), int(top + h)]
                if rect[2] <= rect[0] or rect[3] <= rect[1]:
                    continue
                if box_iou(boxes, torch.tensor([rect], dtype=torch.float64)).min() < option:
                    continue
                cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
                inside = (rect[0] < cx) & (cx < rect[2]) & (rect[1] < cy) & (cy < rect[3])
                if inside.any():
                    return dict(top=rect[1], left=rect[0], height=rect[3] - rect[1], width=rect[2] - rect[0],
                                is_within_crop_area=inside)


class FlowMirror(v2.Transform):
    """Horizontal mirror (p 0.5) of images and boxes; on the stacked image it also negates the x flow on channel
    ``flow_x_index`` (``v -> 2 * flow_centre - v``, clipped to 0..255) when ``flow_x_index`` is not None."""

    def __init__(self, p: float = 0.5, flow_x_index: int | None = None, flow_centre: float = 128.0) -> None:
        super().__init__()
        self.p, self.flow_x_index, self.flow_centre = p, flow_x_index, flow_centre

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"flip": _coin(self.p)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not params["flip"] or not isinstance(inpt, (tv_tensors.Image, tv_tensors.BoundingBoxes)):
            return inpt
        out = F.horizontal_flip(inpt)
        if isinstance(out, tv_tensors.Image) and self.flow_x_index is not None:
            out = out.clone()
            out[self.flow_x_index] = (2 * self.flow_centre - out[self.flow_x_index]).clamp(0, 255)
        return out


class SSDAugmentation:
    """The whole training augmentation: ``aug(rgb, flow, boxes, labels) -> (rgb, flow, boxes, labels)``.

    ``rgb`` / ``flow``: float ``(3, H, W)`` tensors in 0..255 (either may be None, not both); ``boxes`` ``(K, 4)``
    pixels x1, y1, x2, y2 and ``labels`` ``(K,)``. Boxes whose centre leaves the crop are dropped with their labels
    (``SanitizeBoundingBoxes``, which also drops boxes narrower than ``min_box_size`` pixels after clamping).
    Each stage can be switched off. Randomness comes from torch's global generator (seeded per sample by the zoo's
    sampler).
    """

    def __init__(self, size: int = SSD_SIZE, photometric: bool = True, expand: bool = True, max_expand: float = 4.0,
                 crop: bool = True, mirror: bool = True, rgb_fill: Sequence[float] = RGB_MEAN,
                 flow_fill: Sequence[float] = FLOW_MEAN, negate_flow_x: bool = True, flow_x_channel: int = 0,
                 flow_centre: float = 128.0, min_box_size: float = 1.0) -> None:
        self.size = size
        self.photometric = PhotometricDistort() if photometric else None
        self.expand, self.max_expand, self.crop, self.mirror = expand, max_expand, crop, mirror
        self.rgb_fill, self.flow_fill = [float(v) for v in rgb_fill], [float(v) for v in flow_fill]
        self.negate_flow_x, self.flow_x_channel, self.flow_centre = negate_flow_x, flow_x_channel, flow_centre
        self.min_box_size = min_box_size

    def _geometric(self, has_rgb: bool, has_flow: bool) -> v2.Compose:
        fill = (self.rgb_fill if has_rgb else []) + (self.flow_fill if has_flow else [])
        flow_x = (3 if has_rgb else 0) + self.flow_x_channel if has_flow and self.negate_flow_x else None
        steps: list[v2.Transform] = []
        if self.expand:
            steps.append(v2.RandomZoomOut(fill=fill, side_range=(1.0, self.max_expand), p=0.5))
        if self.crop:
            steps.append(SSDIoUCrop())
        steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=self.min_box_size)]
        if self.mirror:
            steps.append(FlowMirror(0.5, flow_x, self.flow_centre))
        steps.append(v2.Resize((self.size, self.size), antialias=False))
        return v2.Compose(steps)

    def __call__(self, rgb: torch.Tensor | None, flow: torch.Tensor | None, boxes: Any, labels: Any
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        if rgb is None and flow is None:
            raise ValueError("SSDAugmentation needs an RGB frame, a flow image or both")
        if rgb is not None and self.photometric is not None:
            rgb = self.photometric(tv_tensors.Image(rgb.float()))
        parts = [x.float() for x in (rgb, flow) if x is not None]
        image = tv_tensors.Image(torch.cat(parts, dim=0))
        sample = {"image": image, "boxes": _boxes(boxes, image.shape[-2:]), "labels": torch.as_tensor(labels)}
        out = self._geometric(rgb is not None, flow is not None)(sample)
        return _split(out["image"], rgb is not None, flow is not None) + (_plain(out["boxes"]), out["labels"])


class SSDResize:
    """The test-time transform: resize to ``size`` x ``size`` (bilinear, no antialiasing), boxes scaled alike."""

    def __init__(self, size: int = SSD_SIZE) -> None:
        self.size = size
        self.resize = v2.Resize((size, size), antialias=False)

    def __call__(self, rgb: torch.Tensor | None, flow: torch.Tensor | None, boxes: Any, labels: Any
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        parts = [x.float() for x in (rgb, flow) if x is not None]
        image = tv_tensors.Image(torch.cat(parts, dim=0))
        out = self.resize({"image": image, "boxes": _boxes(boxes, image.shape[-2:]), "labels": torch.as_tensor(labels)})
        return _split(out["image"], rgb is not None, flow is not None) + (_plain(out["boxes"]), out["labels"])


def _boxes(boxes: Any, canvas: Sequence[int]) -> tv_tensors.BoundingBoxes:
    b = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
    return tv_tensors.BoundingBoxes(b, format="XYXY", canvas_size=(int(canvas[0]), int(canvas[1])))


def _plain(x: torch.Tensor) -> torch.Tensor:
    return x.as_subclass(torch.Tensor)


def _split(image: torch.Tensor, has_rgb: bool, has_flow: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    image = _plain(image)
    rgb = image[:3] if has_rgb else None
    flow = (image[3:] if has_rgb else image) if has_flow else None
    return rgb, flow
