"""Actor-and-action video segmentation from a sentence (Gavrilyuk, Ghodrati, Li, Snoek, CVPR 2018), as scored
on A2D Sentences and J-HMDB Sentences (Sec. 5.1 "Evaluation").

One sample is one referred instance in one annotated frame: a predicted mask and the ground-truth mask at the
frame's own resolution. Per sample we keep only numbers (intersection, union, ground-truth area, confidence score,
an optional id), so samples of any size mix and DDP ranks merge by concatenation.

- IoU = |pred ∩ gt| / |pred ∪ gt|; an empty prediction with a non-empty ground truth scores 0.
- Precision@K: the fraction of samples with IoU **greater than** K, K = 0.5, 0.6, 0.7, 0.8, 0.9.
- overall IoU: total intersection / total union over all samples (large objects weigh more);
  mean IoU: the mean of the per-sample IoUs.
- mAP over the IoU thresholds 0.50:0.05:0.95, two variants:

  ``map_paper`` (the paper's table): the mean over the 10 thresholds t of the fraction of samples with IoU > t,
  i.e. the mean of Precision@t. Check against the published table (tests): the paper's RGB row
  P@0.5..0.9 = 47.5, 34.7, 21.1, 8.0, 0.2 has mAP 19.8, Hu et al.'s 34.8, 23.6, 13.3, 3.3, 0.1 has 13.2;
  interpolating P@0.55..0.85 linearly (P@0.95 = 0) gives means 19.9 and 13.3.

  ``map_coco`` (MTTR, Botach et al., CVPR 2022, and ReferFormer): pycocotools ``COCOeval(iouType="segm")``
  ``stats[0]``, each sample an image with one ground-truth instance and the prediction as its one detection,
  ranked by its confidence score (COCO matches at IoU >= t, and ties in score keep the samples' order).

All values are fractions in [0, 1], not the paper's percentages.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
MAP_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.50:0.05:0.95
SUMMARY_COLUMNS = ("P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9", "mAP", "overall_iou", "mean_iou")

MaskInput = torch.Tensor | Sequence[torch.Tensor]


def binarize(pred: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """A bool mask from a bool/integer mask (non-zero is foreground) or a probability map (``> threshold``)."""
    if pred.is_floating_point():
        return pred > threshold
    return pred != 0


def mask_counts(pred: torch.Tensor, gt: torch.Tensor) -> tuple[int, int, int]:
    """(intersection, union, ground-truth area) in pixels of two bool (H, W) masks of the same shape."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} and ground-truth shape {tuple(gt.shape)} differ")
    inter = int((pred & gt).sum())
    union = int((pred | gt).sum())
    return inter, union, int(gt.sum())


def iou_from_counts(intersection: torch.Tensor, union: torch.Tensor, empty_union_iou: float = 1.0) -> torch.Tensor:
    """Per-sample IoU in float64; a sample whose prediction and ground truth are both empty gets ``empty_union_iou``."""
    inter, union = intersection.to(torch.float64), union.to(torch.float64)
    empty = union == 0
    return torch.where(empty, torch.full_like(union, empty_union_iou), inter / torch.where(empty, 1.0, union))


def precision_at(ious: torch.Tensor, thresholds: Sequence[float] = PRECISION_THRESHOLDS) -> torch.Tensor:
    """The fraction of samples with IoU strictly greater than each threshold (Precision@K)."""
    t = torch.tensor(thresholds, dtype=torch.float64, device=ious.device)
    return (ious.to(torch.float64)[:, None] > t[None]).to(torch.float64).mean(0)


def paper_map(ious: torch.Tensor) -> torch.Tensor:
    """Gavrilyuk et al.'s mAP: the mean of Precision@t over t = 0.50:0.05:0.95."""
    return precision_at(ious, MAP_THRESHOLDS).mean()


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def _coco_eval(
    gt_rles: list[dict], dt_rles: list[dict], gt_areas: Sequence[float], scores: Sequence[float]
) -> np.ndarray:
    """COCOeval segm stats (12 numbers) for one ground truth and one detection per image, printing nothing."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": [{"id": k + 1, "height": r["size"][0], "width": r["size"][1]} for k, r in enumerate(gt_rles)],
            "annotations": [
                # ids start at 1: COCOeval takes a matched id of 0 for "unmatched"
                {"id": k + 1, "image_id": k + 1, "category_id": 1, "segmentation": r, "area": float(a), "iscrowd": 0}
                for k, (r, a) in enumerate(zip(gt_rles, gt_areas))
            ],
            "categories": [{"id": 1, "name": "referred"}],
        }
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(
            [
                {"image_id": k + 1, "category_id": 1, "segmentation": r, "score": float(s)}
                for k, (r, s) in enumerate(zip(dt_rles, scores))
            ]
        )
        ev = COCOeval(coco_gt, coco_dt, iouType="segm")
        ev.params.useCats = 0  # as MTTR and ReferFormer: categories are not predicted
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats, dtype=np.float64)


def coco_stats_from_masks(
    preds: Sequence[torch.Tensor], gts: Sequence[torch.Tensor], scores: Sequence[float]
) -> np.ndarray:
    """COCOeval segm stats of full bool masks, as MTTR scores them; ``stats[0]`` is ``map_coco``."""
    gt_rles = [_rle(g.detach().cpu().numpy()) for g in gts]
    dt_rles = [_rle(p.detach().cpu().numpy()) for p in preds]
    return _coco_eval(gt_rles, dt_rles, [int(g.sum()) for g in gts], scores)


def coco_stats(
    intersection: torch.Tensor, union: torch.Tensor, gt_area: torch.Tensor, scores: torch.Tensor
) -> np.ndarray:
    """COCOeval segm stats from per-sample pixel counts, equal to ``coco_stats_from_masks`` on the real masks.

    For segm, COCOeval sees a mask only through ``maskUtils.iou`` and the two areas, so each sample is replaced by
    1 x U masks with the same counts: ground truth on pixels [0, G), prediction on [G - I, U).
    """
    gt_rles, dt_rles = [], []
    for i, u, g in zip(intersection.long().tolist(), union.long().tolist(), gt_area.long().tolist()):
        gt = np.zeros((1, max(u, 1)), dtype=np.uint8)
        dt = np.zeros_like(gt)
        gt[0, :g] = 1
        dt[0, g - i : u] = 1
        gt_rles.append(_rle(gt))
        dt_rles.append(_rle(dt))
    return _coco_eval(gt_rles, dt_rles, gt_area.tolist(), scores.tolist())


def _as_list(x: MaskInput, name: str) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        if x.ndim == 2:
            return [x]
        if x.ndim == 3:
            return list(x)
        raise ValueError(f"{name} must be an (H, W) mask, an (N, H, W) batch or a list of masks, got {tuple(x.shape)}")
    out = [torch.as_tensor(m) for m in x]
    for m in out:
        if m.ndim != 2:
            raise ValueError(f"each {name} mask must be (H, W), got {tuple(m.shape)}")
    return out


class ReferringSegmentationMetrics(Metric):
    """P@0.5..0.9, mAP (paper and COCO), overall and mean IoU of referring segmentation (Gavrilyuk et al., 2018).

    ``update(preds, target, scores=None, ids=None)`` takes one sample ((H, W) masks), an (N, H, W) batch or lists
    of masks of different sizes. ``preds`` are bool/integer masks or probability maps cut at ``threshold``
    (``> threshold``, as MTTR). ``scores`` rank the samples for ``map_coco``; by default a probability map's mean
    inside its mask (0 when empty), else 1. ``ids`` (integers) travel with the samples, so the per-sample ``ious``
    can be told apart after a DDP gather, which orders samples by rank.

    ``empty_union_iou`` is the IoU of an empty prediction for an empty ground truth (never the case on A2D, whose
    ground truth is never empty); 1.0 as MTTR's ``(I + eps) / (U + eps)``. ``map_coco`` ignores it: pycocotools
    gives such a sample IoU 0, a miss.

    ``compute()`` returns ``P@0.5``..``P@0.9``, ``map_paper``, ``map_coco`` (when ``coco``), ``coco_stats`` (the
    12 COCOeval numbers), ``overall_iou``, ``mean_iou`` (float64 scalars), ``ious`` and ``ids`` (per-sample lists) and
    ``summary``: a dict in the paper's column order ``SUMMARY_COLUMNS``, with mAP of ``map_variant``.
    """

    full_state_update = False

    def __init__(
        self,
        threshold: float = 0.5,
        empty_union_iou: float = 1.0,
        map_variant: str = "paper",
        coco: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if map_variant not in ("paper", "coco"):
            raise ValueError(f"unknown map_variant {map_variant!r}; choose 'paper' or 'coco'")
        if map_variant == "coco" and not coco:
            raise ValueError("map_variant='coco' needs coco=True")
        self.threshold = threshold
        self.empty_union_iou = empty_union_iou
        self.map_variant = map_variant
        self.coco = coco
        # float64 everywhere: a rank without samples syncs an empty tensor of the metric's dtype
        for name in ("intersection", "union", "gt_area", "scores", "ids"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self,
        preds: MaskInput,
        target: MaskInput,
        scores: float | Sequence[float] | torch.Tensor | None = None,
        ids: int | Sequence[int] | torch.Tensor | None = None,
    ) -> None:
        pred_list, gt_list = _as_list(preds, "pred"), _as_list(target, "target")
        if len(pred_list) != len(gt_list):
            raise ValueError(f"{len(pred_list)} predictions for {len(gt_list)} ground-truth masks")
        n = len(pred_list)
        counts, default_scores = [], []
        for k, (p, g) in enumerate(zip(pred_list, gt_list)):
            p, g = p.detach(), g.detach()
            if p.shape != g.shape:
                raise ValueError(
                    f"sample {k}: prediction shape {tuple(p.shape)} and ground-truth shape {tuple(g.shape)} differ"
                )
            mask = binarize(p, self.threshold)
            counts.append(mask_counts(mask, g.to(mask.device) != 0))
            if p.is_floating_point():
                default_scores.append(float(p[mask].mean()) if mask.any() else 0.0)
            else:
                default_scores.append(1.0)
        score_t = self._per_sample(default_scores if scores is None else scores, n, "scores")
        id_t = self._per_sample([-1] * n if ids is None else ids, n, "ids")
        inter, union, area = torch.tensor(counts, dtype=torch.float64, device=self.device).reshape(n, 3).unbind(1)
        self.intersection.append(inter)
        self.union.append(union)
        self.gt_area.append(area)
        self.scores.append(score_t)
        self.ids.append(id_t)

    def update_counts(
        self,
        intersection: Sequence[float],
        union: Sequence[float],
        gt_area: Sequence[float],
        scores: Sequence[float],
        ids: Sequence[int] | None = None,
    ) -> None:
        """Add samples already counted (pixels of intersection, union and ground truth, and scores), as a
        benchmark's result files hold them."""
        n = len(intersection)
        if not (len(union) == len(gt_area) == len(scores) == n):
            raise ValueError("intersection, union, gt_area and scores need one value per sample each")
        self.intersection.append(self._per_sample(intersection, n, "intersections"))
        self.union.append(self._per_sample(union, n, "unions"))
        self.gt_area.append(self._per_sample(gt_area, n, "ground-truth areas"))
        self.scores.append(self._per_sample(scores, n, "scores"))
        self.ids.append(self._per_sample([-1] * n if ids is None else ids, n, "ids"))
        self._update_count += 1  # as update() counts, so compute() knows samples were added

    def _per_sample(self, values, n: int, name: str) -> torch.Tensor:
        t = torch.as_tensor(values, dtype=torch.float64).detach().flatten().to(self.device)
        if t.numel() == n:
            return t.reshape(n)
        raise ValueError(f"{t.numel()} {name} for {n} samples")

    def compute(self) -> dict:
        if isinstance(self.intersection, list) and not self.intersection:
            raise ValueError("no samples to score: call update() first")
        inter, union = dim_zero_cat(self.intersection), dim_zero_cat(self.union)
        ious = iou_from_counts(inter, union, self.empty_union_iou)
        p = precision_at(ious, PRECISION_THRESHOLDS)
        out: dict = {f"P@{k}": p[i] for i, k in enumerate(PRECISION_THRESHOLDS)}
        out["map_paper"] = paper_map(ious)
        if self.coco:
            stats = coco_stats(
                inter.cpu(), union.cpu(), dim_zero_cat(self.gt_area).cpu(), dim_zero_cat(self.scores).cpu()
            )
            out["coco_stats"] = torch.as_tensor(stats, dtype=torch.float64)
            out["map_coco"] = out["coco_stats"][0]
        total = union.sum()
        out["overall_iou"] = (
            inter.sum() / total if total > 0 else torch.tensor(self.empty_union_iou, dtype=torch.float64)
        )
        out["mean_iou"] = ious.mean()
        # lists, for a JSON report (torchmetrics would squeeze a one-sample tensor to 0-d)
        out["ious"] = ious.tolist()
        out["ids"] = dim_zero_cat(self.ids).long().tolist()
        values = [*p.tolist(), float(out[f"map_{self.map_variant}"]), float(out["overall_iou"]), float(out["mean_iou"])]
        out["summary"] = dict(zip(SUMMARY_COLUMNS, values))
        return out
