"""Tracking with SINT (Sec. 4.2) as ``run_SINT_OTB.py`` tracks: the first-frame query is never updated; candidates
at polar offsets of the previous box at three scales are scored in one forward pass by the inner product of
descriptors; the best wins, refined by box regression (the next search starts from the unrefined box). SINT+ adds
the resolution-adaptive search radius and the optical-flow check on the top candidates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from zoo.nn.roi import descriptor_scores
from zoo.nn.transfer import to_device
from zoo.sint.regression import RidgeRegressor, apply_targets, rcnn_targets
from zoo.sint.sampling import REGRESSION_SCALES, SCALES, caffe_rois, candidate_boxes, regression_samples
from zoo.tracking.base import BatchTracker, BoxLike, ImageLike


@dataclass
class _State:
    query: torch.Tensor
    first_size: np.ndarray
    previous: np.ndarray  # unrefined: where the next search starts (the refined box is only reported)
    frame_size: tuple[int, int]
    regressor: RidgeRegressor | None = None
    gray: np.ndarray | None = None


def flow_support(flow: np.ndarray, previous: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """How many pixels of the previous box, moved by the flow, land inside each candidate (``run_SINT_OTB.py``: the
    pixels int(x) .. int(x + w - 1) of 1-based box coordinates, pixel column c at x = c + 1; bounds inclusive)."""
    h, w = flow.shape[:2]
    px1, py1 = max(int(previous[0]), 1), max(int(previous[1]), 1)
    px2, py2 = min(int(previous[0] + previous[2] - 1), w), min(int(previous[1] + previous[3] - 1), h)
    if px2 < px1 or py2 < py1:
        return np.zeros(len(candidates))
    ys, xs = np.mgrid[py1 : py2 + 1, px1 : px2 + 1]
    mx = (xs + flow[py1 - 1 : py2, px1 - 1 : px2, 0]).ravel()[None]
    my = (ys + flow[py1 - 1 : py2, px1 - 1 : px2, 1]).ravel()[None]
    c = candidates
    inside = (
        (mx >= c[:, :1]) & (mx <= c[:, :1] + c[:, 2:3] - 1) & (my >= c[:, 1:2]) & (my <= c[:, 1:2] + c[:, 3:4] - 1)
    )
    return inside.sum(1)


class SINTTracker(BatchTracker):
    """got10k-style tracker over a ``SINT`` network; ``flow=True`` gives SINT+.

    Defaults are ``run_SINT_OTB.py``'s: ``step`` 3 px radial steps (frame pixels) in 10 directions up to the search
    radius, 3 scales of the first box; the radius is ``radius`` x W / 512 with ``adaptive_radius`` (SINT+, the
    released code) and ``radius`` px without (plain SINT, Sec. 4.2); ``adaptive_radius=None`` follows ``flow``.
    Box regression: ridge (alpha 1, no intercept) on the L2-normalised conv4_3 RoI features of first-frame samples
    (20 angles, 1 px steps, 7 scales 0.7 .. 1/0.7, IoU > 0.6). SINT+ checks the top 5 candidates against the flow
    from the previous, unrefined box (more than 0.25 of its area must land inside).

    ``fused`` (default) scores candidates without building their 54,272-d descriptors, picks the best per sequence
    on the device and reuses its pooled conv4_3 for the regression, one transfer to the host per frame;
    ``fused=False`` is the former path (descriptors built, the best box pooled again), kept as the baseline.
    """

    def __init__(
        self,
        model,  # noqa: ANN001
        radius: float = 30.0,
        step: float = 3.0,
        angles: int = 10,
        scales: Sequence[float] = SCALES,
        adaptive_radius: bool | None = None,
        regression: bool = True,
        ridge_alpha: float = 1.0,
        ridge_intercept: bool = False,
        regression_iou: float = 0.6,
        regression_angles: int = 20,
        regression_step: float = 1.0,
        regression_scales: Sequence[float] = REGRESSION_SCALES,
        flow: bool = False,
        flow_top: int = 5,
        flow_threshold: float = 0.25,
        name: str | None = None,
        amp: bool | None = None,
        channels_last: bool | None = None,
        fused: bool = True,
    ) -> None:
        self.model = model.eval()
        on_gpu = next(model.parameters()).is_cuda
        self.amp = on_gpu if amp is None else amp  # bf16 autocast for the trunk and head
        if (on_gpu if channels_last is None else channels_last):
            self.model.to(memory_format=torch.channels_last)
        self.radius, self.step, self.angles, self.scales = radius, step, angles, tuple(scales)
        self.adaptive_radius = flow if adaptive_radius is None else adaptive_radius
        self.regression, self.ridge_alpha, self.ridge_intercept = regression, ridge_alpha, ridge_intercept
        self.regression_iou, self.regression_angles = regression_iou, regression_angles
        self.regression_step, self.regression_scales = regression_step, tuple(regression_scales)
        self.flow, self.flow_top, self.flow_threshold = flow, flow_top, flow_threshold
        self.name = name or ("SINT+" if flow else "SINT")
        self.fused = fused  # in a run's identity: on the GPU the two paths round differently
        self._states: list[_State] = []

    @torch.no_grad()
    def init_batch(self, images: Sequence[ImageLike], boxes: Sequence[BoxLike]) -> None:
        """The first frames and boxes (checked and converted by ``Tracker``: RGB uint8 arrays, float64 boxes)."""
        if boxes is None or any(b is None for b in boxes):
            raise ValueError(f"{self.name} needs a first-frame box for every sequence")
        boxes = [np.asarray(b, dtype=np.float64) for b in boxes]
        x, factors = self.model.prepare(list(images))
        feats = self._trunk(x)
        rois = torch.cat([caffe_rois(b[None], i, *f) for i, (b, f) in enumerate(zip(boxes, factors))]).to(x.device)
        with self._autocast():
            queries = self.model.embed(feats, rois).float()
        self._states = []
        for i, (image, box) in enumerate(zip(images, boxes)):
            state = _State(queries[i], box[2:].copy(), box.copy(), image.shape[:2])
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
        samples = regression_samples(box, w, h, self.radius, self.regression_angles, self.regression_step,
                                     self.regression_scales, self.regression_iou)
        if len(samples) == 0:
            return None
        x = self._conv4(feats, caffe_rois(samples, index, *factor))
        return RidgeRegressor(self.ridge_alpha, self.ridge_intercept).fit(
            x, torch.from_numpy(rcnn_targets(samples, box)).to(x.device))

    def _conv4(self, feats, rois: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return F.normalize(self.model.head.conv4_features(feats[0], rois.to(feats[0].device)).float(), dim=1)

    def candidates(self, index: int = 0) -> np.ndarray:
        """Candidate boxes (x, y, w, h, frame pixels) for sequence ``index``'s next frame."""
        st = self._states[index]
        h, w = st.frame_size
        return candidate_boxes(st.previous, st.first_size, w, h, self.radius, self.step, self.angles, self.scales,
                               self.adaptive_radius)

    @torch.no_grad()
    def update_batch(self, images: Sequence[ImageLike | None]) -> list[np.ndarray | None]:
        active = [i for i, im in enumerate(images) if im is not None]
        out: list[np.ndarray | None] = [None] * len(images)
        if not active:
            return out
        x, factors = self.model.prepare([images[i] for i in active])
        cands, rois = [], []
        for k, i in enumerate(active):
            cands.append(c := self.candidates(i))
            rois.append(caffe_rois(c, k, *factors[k]))
        counts = [len(c) for c in cands]
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        with_reg = [k for k, i in enumerate(active) if self._states[i].regressor is not None]
        # one host-to-device copy, before the network's work is queued: rois, each sequence's first row, regressed rows
        packed = torch.cat([torch.cat(rois).flatten(), torch.as_tensor(np.concatenate([first, with_reg])).float()])
        packed = to_device(packed, x.device)
        n = 5 * int(sum(counts))
        rois_t, index = packed[:n].view(-1, 5), packed[n:].long()
        first_t, reg_t = index[: len(first)], index[len(first) :]
        feats = self._trunk(x)
        if self.fused:
            chosen, refined = self._choose_fused(feats, rois_t, cands, active, images, counts, first, first_t,
                                                 with_reg, reg_t)
        else:
            chosen, refined = self._choose_reference(feats, rois_t, cands, active, images, factors)
        for k, i in enumerate(active):
            st = self._states[i]
            st.previous = chosen[k].copy()
            out[i] = refined[k]
        return out

    def _choose_reference(self, feats, rois, cands, active, images, factors) -> tuple[list, list]:  # noqa: ANN001
        """Whole descriptors, scores to the host, the best box pooled again for the regression (the former path)."""
        with self._autocast():
            desc = self.model.embed(feats, rois).float()
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
            rois = torch.cat([caffe_rois(chosen[k][None], k, *factors[k]) for k in with_reg])
            feat = self._conv4(feats, rois)
            deltas = torch.cat(
                [self._states[active[k]].regressor.predict(feat[row : row + 1]) for row, k in enumerate(with_reg)]
            ).cpu().numpy()
            for row, k in enumerate(with_reg):
                refined[k] = apply_targets(chosen[k], deltas[row])
        return chosen, refined

    def _choose_fused(self, feats, rois, cands, active, images, counts, first, first_t, with_reg,  # noqa: ANN001
                      reg_t) -> tuple[list, list]:
        """Scores from the descriptor's parts, the best per sequence picked on the device (on the host for SINT+'s
        flow check), the regression on the best candidate's pooled conv4_3; one transfer to the host."""
        device = rois.device
        with self._autocast():
            parts = self.model.head.parts(feats[0], feats[1], rois)
        queries = torch.stack([self._states[i].query for i in active])
        scores = descriptor_scores(parts, queries, counts)
        if self.flow:  # the flow check reads the top scores on the host
            scores_host = scores.cpu().numpy()
            local = []
            for k, i in enumerate(active):
                s = scores_host[first[k] : first[k] + counts[k]]
                local.append(self._flow_check(self._states[i], images[i], cands[k], s, int(np.argmax(s))))
            best = to_device(np.asarray(local) + first, device)
        elif len(set(counts)) == 1:
            best = scores.view(len(cands), counts[0]).argmax(1) + first_t
        else:  # each sequence's scores padded to one row; argmax takes the first of equal maxima, as numpy's
            owner = rois[:, 0].long()  # a roi's image index is its sequence's row
            padded = scores.new_full((len(cands), max(counts)), float("-inf"))
            padded[owner, torch.arange(len(scores), device=device) - first_t[owner]] = scores
            best = padded.argmax(1) + first_t
        rows = [best[:, None].double()]
        if with_reg:
            feat = F.normalize(parts[0][best[reg_t]].float(), dim=1)
            deltas = torch.zeros(len(cands), 4, dtype=torch.float64, device=device)
            for row, k in enumerate(with_reg):
                deltas[k] = self._states[active[k]].regressor.predict(feat[row : row + 1])[0]
            rows.append(deltas)
        host = torch.cat(rows, 1).cpu().numpy()
        chosen = [cands[k][int(host[k, 0]) - first[k]] for k in range(len(cands))]
        refined = [apply_targets(chosen[k], host[k, 1:]) if k in with_reg else chosen[k] for k in range(len(cands))]
        return chosen, refined

    def _flow_check(self, st: _State, image: np.ndarray, cands: np.ndarray, scores: np.ndarray, best: int) -> int:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        flow = cv2.calcOpticalFlowFarneback(st.gray, gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        st.gray = gray
        top = np.argsort(-scores, kind="stable")[: self.flow_top]
        support = flow_support(flow, st.previous, cands[top])  # from the unrefined box, as the released code
        passing = top[support > self.flow_threshold * st.previous[2] * st.previous[3]]
        return int(passing[0]) if len(passing) else best
