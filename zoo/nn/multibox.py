"""SSD's training target and loss and its inference (Liu et al., ECCV 2016, Sec. 2.2), as ssd.pytorch's
``match`` / ``MultiBoxLoss`` / ``Detect`` and ROAD's ``test-ucf24.py`` compute them.

Boxes are relative ``x1, y1, x2, y2`` unless named otherwise; priors are ``cx, cy, w, h`` (``zoo.nn.ssd``). Offsets
use torchvision's ``BoxCoder`` with weights (10, 10, 5, 5), i.e. variances (0.1, 0.2); its decode clamps a log-size
offset at log(1000 / 16), which ssd.pytorch does not (a box 62x its prior, never reached in practice). ``BoxCoder``
lives in torchvision's ``models.detection._utils``, the module its own SSD uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.detection._utils import BoxCoder


def box_coder(variances: tuple[float, float] = (0.1, 0.2)) -> BoxCoder:
    """The offset coder of variances ``(v_center, v_size)``."""
    return BoxCoder((1 / variances[0], 1 / variances[0], 1 / variances[1], 1 / variances[1]))


def priors_xyxy(priors: torch.Tensor) -> torch.Tensor:
    return torchvision.ops.box_convert(priors, "cxcywh", "xyxy")


def match(boxes: torch.Tensor, labels: torch.Tensor, priors: torch.Tensor, threshold: float = 0.5
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """ssd.pytorch's ``match``: every prior takes its best-overlapping ground-truth box, each box also claims its
    own best prior (overlap set to 2, later boxes winning a shared prior); priors under ``threshold`` are
    background. Returns per prior the class (0 background, else ``labels + 1``) and its box (P, 4)."""
    p = priors.shape[0]
    if boxes.numel() == 0:
        return torch.zeros(p, dtype=torch.int64, device=priors.device), torch.zeros(p, 4, device=priors.device)
    overlaps = torchvision.ops.box_iou(boxes, priors_xyxy(priors))  # (G, P)
    best_prior = overlaps.argmax(1)
    best_truth_overlap, best_truth = overlaps.max(0)
    best_truth_overlap = best_truth_overlap.index_fill(0, best_prior, 2.0)
    for j in range(len(best_prior)):
        best_truth[best_prior[j]] = j
    conf = labels[best_truth].long() + 1
    conf[best_truth_overlap < threshold] = 0
    return conf, boxes[best_truth]


@dataclass
class MultiBoxLoss:
    """``MultiBoxLoss(num_classes, 0.5, True, 0, True, 3, 0.5, False)``: match at IoU >= ``threshold``, keep for each
    image the ``neg_pos`` x positives hardest negatives (highest background loss), Smooth-L1 on the positives'
    offsets plus softmax cross-entropy on positives and kept negatives, both summed and divided by the number of
    positives in the batch (at least 1; ssd.pytorch divides by 0 there)."""

    threshold: float = 0.5
    neg_pos: int = 3
    variances: tuple[float, float] = (0.1, 0.2)

    def targets(self, boxes: list[torch.Tensor], labels: list[torch.Tensor], priors: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image the prior classes (B, P) and encoded offsets (B, P, 4)."""
        coder = box_coder(self.variances)
        anchors = priors_xyxy(priors)
        confs, locs = [], []
        for b, lab in zip(boxes, labels):
            conf, matched = match(b.to(priors), lab.to(priors.device), priors, self.threshold)
            confs.append(conf)
            locs.append(coder.encode_single(matched, anchors))
        return torch.stack(confs), torch.stack(locs)

    def __call__(self, loc: torch.Tensor, conf: torch.Tensor, priors: torch.Tensor, boxes: list[torch.Tensor],
                 labels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loc loss, conf loss) of predictions ``loc`` (B, P, 4) and ``conf`` (B, P, C) for ground truth ``boxes``
        (relative x1, y1, x2, y2) and 0-based ``labels``, one tensor per image."""
        with torch.no_grad():
            conf_t, loc_t = self.targets(boxes, labels, priors.float())
        loc, conf = loc.float(), conf.float()
        pos = conf_t > 0
        num_pos = pos.sum(1, keepdim=True)
        loss_l = F.smooth_l1_loss(loc[pos], loc_t[pos], reduction="sum")
        with torch.no_grad():
            mining = F.cross_entropy(conf.transpose(1, 2), conf_t, reduction="none")  # (B, P)
            mining[pos] = 0
            rank = mining.argsort(1, descending=True).argsort(1)
            neg = rank < (self.neg_pos * num_pos).clamp(max=pos.shape[1] - 1)
        keep = pos | neg
        loss_c = F.cross_entropy(conf[keep], conf_t[keep], reduction="sum")
        n = num_pos.sum().clamp(min=1).to(loss_l.dtype)
        return loss_l / n, loss_c / n


def decode(loc: torch.Tensor, priors: torch.Tensor, variances: tuple[float, float] = (0.1, 0.2)) -> torch.Tensor:
    """Offsets (B, P, 4) -> relative boxes x1, y1, x2, y2 (B, P, 4)."""
    b, p, _ = loc.shape
    out = box_coder(variances).decode_single(loc.reshape(-1, 4).float(), priors_xyxy(priors).repeat(b, 1).float())
    return out.view(b, p, 4)


def class_detections(boxes: torch.Tensor, scores: torch.Tensor, conf_thresh: float = 0.01, nms_thresh: float = 0.45,
                     top_k: int = 20) -> torch.Tensor:
    """One image's detections from per-prior ``boxes`` (P, 4) and softmax ``scores`` (P, C, background first), as
    ROAD's test loop: per class the ``top_k`` highest-scoring priors above ``conf_thresh`` (ssd.pytorch's ``nms``
    looks at no more), then NMS at ``nms_thresh``. Rows ``label, score, x1, y1, x2, y2`` (0-based labels), by class
    then score."""
    fg = scores[:, 1:]
    k = min(top_k, fg.shape[0])
    top_s, top_i = fg.topk(k, dim=0)  # (k, C - 1)
    keep = top_s > conf_thresh
    cls = torch.arange(fg.shape[1], device=fg.device).expand_as(top_i)[keep]
    score, box = top_s[keep], boxes[top_i[keep]]
    kept = torchvision.ops.batched_nms(box.float(), score.float(), cls, nms_thresh)
    out = torch.cat([cls[kept, None].to(box.dtype), score[kept, None].to(box.dtype), box[kept]], 1)
    order = torch.argsort(out[:, 0] * 2 - out[:, 1], stable=True)  # by class, then by score (scores are <= 1)
    return out[order]
