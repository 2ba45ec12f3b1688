"""Tracking with SINT (Sec. 4.2): the first-frame query is never updated; candidates at polar offsets of
the previous box at three scales are scored in one forward pass by the inner product of descriptors;
the best wins, refined by box regression (the next search starts from the unrefined box). SINT+ adds
the optical-flow check on the top candidates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from zoo.sint.regression import RidgeRegressor, apply_targets, rcnn_targets
from zoo.sint.sampling import box_iou, candidate_boxes, polar_boxes
from zoo.tracking.base import BatchTracker, BoxLike, ImageLike


@dataclass
class _State:
    query: torch.Tensor
    first_size: np.ndarray
    previous: np.ndarray  # unrefined: where the next search starts
    output: np.ndarray  # refined: what was reported
    frame_size: tuple[int, int]
    regressor: RidgeRegressor | None = None
    gray: np.ndarray | None = None


def to_rois(boxes: np.ndarray, index: int, sx: float, sy: float) -> torch.Tensor:
    """x, y, w, h boxes in frame pixels -> (K, 5) rois in input pixels for image ``index``."""
    b = np.asarray(boxes, dtype=np.float64)
    r = np.stack(
        [np.full(len(b), index), b[:, 0] * sx, b[:, 1] * sy, (b[:, 0] + b[:, 2]) * sx, (b[:, 1] + b[:, 3]) * sy], 1
    )
    return torch.from_numpy(r).float()


def flow_support(flow: np.ndarray, previous: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Fraction of the previous box's pixels that, moved by the flow, fall inside each candidate."""
    h, w = flow.shape[:2]
    x0, y0 = int(max(previous[0], 0)), int(max(previous[1], 0))
    x1, y1 = int(min(previous[0] + previous[2], w)), int(min(previous[1] + previous[3], h))
    if x1 <= x0 or y1 <= y0:
        return np.zeros(len(candidates))
    ys, xs = np.mgrid[y0:y1, x0:x1]
    mx = xs + flow[y0:y1, x0:x1, 0]
    my = ys + flow[y0:y1, x0:x1, 1]
    c = candidates
    inside = (
        (mx.ravel()[None] >= c[:, :1])
        & (mx.ravel()[None] < c[:, :1] + c[:, 2:3])
        & (my.ravel()[None] >= c[:, 1:2])
        & (my.ravel()[None] < c[:, 1:2] + c[:, 3:4])
    )
    return inside.mean(1)


class SINTTracker(BatchTracker):
    """got10k-style tracker over a ``SINT`` network; ``flow=True`` gives SINT+.

    ``radius`` and ``step`` are pixels at the paper's 512 x 512 input (``reference_size``), so the search
    region is the same fraction of the frame whatever the network's input size (30 W / 512 in the frame).
    """

    def __init__(
        self,
        model,  # noqa: ANN001
        radius: float = 30.0,
        step: float = 3.0,
        reference_size: int = 512,
        angles: int = 10,
        scales: Sequence[float] = (math.sqrt(2) / 2, 1.0, math.sqrt(2)),
        regression: bool = True,
        ridge_lambda: float = 0.1,
        regression_iou: float = 0.6,
        flow: bool = False,
        flow_top: int = 5,
        flow_threshold: float = 0.25,
        name: str | None = None,
        amp: bool | None = None,
        channels_last: bool | None = None,
    ) -> None:
        self.model = model.eval()
        on_gpu = next(model.parameters()).is_cuda
        self.amp = on_gpu if amp is None else amp  # bf16 autocast for the trunk and head
        if (on_gpu if channels_last is None else channels_last):
            self.model.to(memory_format=torch.channels_last)
        self.radius, self.step, self.angles, self.scales = radius, step, angles, tuple(scales)
        self.reference_size = reference_size
        self.regression, self.ridge_lambda, self.regression_iou = regression, ridge_lambda, regression_iou
        self.flow, self.flow_top, self.flow_threshold = flow, flow_top, flow_threshold
        self.name = name or ("SINT+" if flow else "SINT")
        self._states: list[_State] = []

    @torch.no_grad()
    def init_batch(self, images: Sequence[ImageLike], boxes: Sequence[BoxLike]) -> None:
        """The first frames and boxes (checked and converted by ``Tracker``: RGB uint8 arrays, float64 boxes)."""
        if boxes is None or any(b is None for b in boxes):
            raise ValueError(f"{self.name} needs a first-frame box for every sequence")
        boxes = [np.asarray(b, dtype=np.float64) for b in boxes]
        x, factors = self.model.prepare(list(images))
        feats = self._trunk(x)
        rois = torch.cat([to_rois(b[None], i, *f) for i, (b, f) in enumerate(zip(boxes, factors))]).to(x.device)
        with self._autocast():
            queries = self.model.embed(feats, rois).float()
        self._states = []
        for i, (image, box) in enumerate(zip(images, boxes)):
            state = _State(queries[i], box[2:].copy(), box.copy(), box.copy(), image.shape[:2])
            if self.regression:
                state.regressor = self._fit_regressor(feats, i, box, factors[i], image.shape[:2])
            if self.flow:
                state.gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            self._states.append(state)

    def _autocast(self):  # noqa: ANN202
        device = "cuda" if self.model.mean.is_cuda else "cpu"
        return torch.autocast(device, dtype=torch.bfloat16, enabled=self.amp)

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.amp:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            return self.model.trunk(x)

    def _fit_regressor(self, feats, index: int, box: np.ndarray, factor, size) -> RidgeRegressor | None:  # noqa: ANN001
        h, w = size
        samples = [polar_boxes(box, w, h, angles=16, radii=10)]
        for s in (0.8, 0.9, 1.1, 1.2):
            scaled = box.copy()
            scaled[2:] *= s
            scaled[:2] += (box[2:] - scaled[2:]) / 2
            samples.append(polar_boxes(scaled, w, h, angles=8, radii=5))
        samples = np.concatenate(samples)
        samples = samples[box_iou(samples, box) > self.regression_iou]
        if len(samples) < 8:
            return None
        x = self._conv4(feats, to_rois(samples, index, *factor))
        return RidgeRegressor(self.ridge_lambda).fit(x, torch.from_numpy(rcnn_targets(samples, box)).to(x.device))

    def _conv4(self, feats, rois: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return F.normalize(self.model.head.conv4_features(feats[0], rois.to(feats[0].device)).float(), dim=1)

    def candidates(self, index: int = 0) -> np.ndarray:
        """Candidate boxes (x, y, w, h, frame pixels) for sequence ``index``'s next frame."""
        st = self._states[index]
        h, w = st.frame_size
        return candidate_boxes(st.previous, st.first_size, w, h, self.reference_size, self.radius, self.step,
                               self.angles, self.scales)

    @torch.no_grad()
    def update_batch(self, images: Sequence[ImageLike | None]) -> list[np.ndarray | None]:
        active = [i for i, im in enumerate(images) if im is not None]
        out: list[np.ndarray | None] = [None] * len(images)
        if not active:
            return out
        x, factors = self.model.prepare([images[i] for i in active])
        feats = self._trunk(x)
        cands, rois = [], []
        for k, i in enumerate(active):
            cands.append(c := self.candidates(i))
            rois.append(to_rois(c, k, *factors[k]))
        with self._autocast():
            desc = self.model.embed(feats, torch.cat(rois).to(x.device)).float()
        # every candidate against its own sequence's query, one transfer to the host for all of them
        owner = torch.cat([torch.full((len(c),), k, dtype=torch.long) for k, c in enumerate(cands)]).to(desc.device)
        queries = torch.stack([self._states[i].query for i in active]).float()
        scores_all = (desc * queries[owner]).sum(1).cpu().numpy()
        chosen, start = [], 0
        for k, i in enumerate(active):
            st, c = self._states[i], cands[k]
            scores = scores_all[start : start + len(c)]
            start += len(c)
            best = int(np.argmax(scores))
            if self.flow:
                best = self._flow_check(st, images[i], c, scores, best)
            chosen.append(c[best])
        refined = list(chosen)
        with_reg = [k for k, i in enumerate(active) if self._states[i].regressor is not None]
        if with_reg:
            rois = torch.cat([to_rois(chosen[k][None], k, *factors[k]) for k in with_reg])
            feat = self._conv4(feats, rois)
            deltas = torch.cat(
                [self._states[active[k]].regressor.predict(feat[row : row + 1]) for row, k in enumerate(with_reg)]
            ).cpu().numpy()
            for row, k in enumerate(with_reg):
                refined[k] = apply_targets(chosen[k], deltas[row])
        for k, i in enumerate(active):
            st = self._states[i]
            st.previous, st.output = chosen[k].copy(), refined[k].copy()
            out[i] = refined[k]
        return out

    def _flow_check(self, st: _State, image: np.ndarray, cands: np.ndarray, scores: np.ndarray, best: int) -> int:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        flow = cv2.calcOpticalFlowFarneback(st.gray, gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        st.gray = gray
        top = np.argsort(-scores)[: self.flow_top]
        support = flow_support(flow, st.output, cands[top])
        passing = top[support > self.flow_threshold]
        return int(passing[0]) if len(passing) else best
