"""The language trackers (Li et al., CVPR 2017, Sec. 4). Model I: the lingual specification network grounds
the sentence in every frame; no box is needed, so many videos are tracked at once from their sentences
alone. Model II: the sentence gives the first-frame box, then the visual specification network tracks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from zoo.lang_tracker.crops import crop_region, crop_regions
from zoo.nn.transfer import to_device
from zoo.tracking.base import BatchTracker, BoxLike, ImageLike


class LingualTracker(BatchTracker):
    """Tracks by grounding the sentence in each frame; ``init`` returns the first-frame box it found (a given
    box is ignored: Model I uses the sentence only)."""

    needs_sentence = True
    needs_box = False  # the benchmark withholds the first box and scores the tracker's own (zoo.benchmark.tracking)

    def __init__(self, model, name: str | None = None, amp: bool | None = None,  # noqa: ANN001
                 cache_sentences: bool = True) -> None:
        self.model = model.eval()
        self.name = name or "LangModelI"
        self.amp = model.mean.is_cuda if amp is None else amp  # bf16 on the GPU
        self.sentences: list[str] = []
        # encode each sentence once (False: every frame, the former path)
        self.cache_sentences = cache_sentences
        self.codes: torch.Tensor | None = None

    def init_batch(
        self,
        images: Sequence[ImageLike],
        boxes: Sequence[BoxLike | None] | None = None,
        sentences: Sequence[str] | None = None,
    ) -> list[np.ndarray]:
        if sentences is None or len(sentences) != len(images) or not all(isinstance(s, str) for s in sentences):
            raise ValueError(f"{self.name} tracks from a sentence: give one per sequence")
        self.sentences = list(sentences)
        self.codes = self.model.sentence_codes(self.sentences, amp=self.amp) if self.cache_sentences else None
        return list(self.model.ground(list(images), self.sentences, self.amp, codes=self.codes))

    @torch.no_grad()
    def update_batch(self, images: Sequence[ImageLike | None]) -> list[np.ndarray | None]:
        active = [k for k, image in enumerate(images) if image is not None]
        out: list[np.ndarray | None] = [None] * len(images)
        if active:
            codes = None
            if self.codes is not None:
                codes = self.codes if len(active) == len(images) else self.codes[to_device(active, self.codes.device)]
            found = self.model.ground([images[k] for k in active], [self.sentences[k] for k in active], self.amp,
                                      codes=codes)
            for k, box in zip(active, found):
                out[k] = box
        return out


class VisualTracker(BatchTracker):
    """The visual specification network as a tracker: the first-frame template is never updated; each frame
    is searched at 3 scales around the previous box, non-unit scales are penalised, the best peak moves the
    box and the size follows the best scale with smoothing (Sec. 3.2).

    As ``track_model/test_track_model_OTB100_pred.py`` (and ``demo/lang_track_demo.ipynb``) compute it: the peak is
    the argmax over scales and cells of the penalised raw scores (the correlation map itself, 44 x 44 at 352 px,
    in float32); the box is the previous size times the best scale, placed with its centre on the peak cell
    (``x1 = crop x1 + (c - 5) * 8 / 352 * crop width``), then cut to the frame (left / top edge at least 0, right
    / bottom edge at most the frame's); the next search is centred on that box, and the carried size is the
    previous size times the smoothed scale. ``upsample`` > 1 (a choice, off by default): the response bicubically
    upsampled by that factor before the peak is taken (sub-cell positions). Choice: search regions stay in
    sub-pixel coordinates (the official code rounds them to whole pixels and takes their centre with ``ceil``).

    With ``lingual`` (a ``LingualSpecification``) it is Model II: the sentence gives the first-frame box. With a
    ``lingual_weight`` w > 0 as well it is Model III: every frame the lingual network also responds over the
    whole frame (with word attention conditioned on the first-frame target when it has attention), its map is
    read at the positions of the visual response, and the two are mixed, (1 - w) visual + w lingual.
    Choice: a convex mix with w = 0.5 (``lang_model_iii``); the paper combines the two without giving the rule.
    Scales, penalty and smoothing are the official code's (``track_model/test_pred_config.py``): scales
    0.9639, 1, 1.0375, penalty 0.962 on the raw scores (the correlation, before the scale, bias and sigmoid)
    of the other two, and a smoothed scale factor s <- (1 - 0.34) s + 0.34 scale that multiplies the
    size every frame. ``cache_sentences`` (default): Model III encodes each sentence (LSTM and word attention on
    the first-frame target) once at ``init`` rather than every frame, the same vectors; ``False`` is the former path.
    """

    def __init__(self, model, lingual=None, scales: Sequence[float] = (0.9639, 1.0, 1.0375),  # noqa: ANN001
                 scale_penalty: float = 0.962, scale_lr: float = 0.34, lingual_weight: float = 0.0,
                 upsample: int = 1, name: str | None = None, amp: bool | None = None, cache_sentences: bool = True
                 ) -> None:
        self.model = model.eval()
        self.cache_sentences = cache_sentences
        self.codes: torch.Tensor | None = None
        self.amp = model.mean.is_cuda if amp is None else amp  # bf16 on the GPU
        self.lingual = lingual.eval() if lingual is not None else None
        self.needs_sentence = lingual is not None
        self.needs_box = lingual is None  # Models II and III start from the sentence: no box is given
        if int(upsample) != upsample or upsample < 1:
            raise ValueError(f"upsample must be a whole number >= 1, not {upsample}")
        self.upsample = int(upsample)
        if not 0.0 <= lingual_weight <= 1.0 or (lingual_weight > 0 and lingual is None):
            raise ValueError("lingual_weight must lie in [0, 1], and above 0 needs a lingual network (Model III)")
        self.lingual_weight = lingual_weight
        self.sentences: list[str] = []
        self.targets: torch.Tensor | None = None
        self.scales = np.asarray(scales, dtype=np.float64)
        self.scale_lr = scale_lr
        # per scale, on the raw scores as in the official code
        self.penalties = torch.as_tensor(np.where(self.scales == 1.0, 1.0, scale_penalty), dtype=torch.float32,
                                         device=model.mean.device)
        self.factors: list[float] = []
        self.name = name or ("VisualSpec" if lingual is None else "LangModelIII" if lingual_weight else "LangModelII")
        self.filters: torch.Tensor | None = None
        self.centres: list[np.ndarray] = []
        self.sizes: list[np.ndarray] = []

    def _batch(self, crops: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous().to(self.model.mean.device)

    @torch.no_grad()
    def init_batch(
        self,
        images: Sequence[ImageLike],
        boxes: Sequence[BoxLike | None] | None = None,
        sentences: Sequence[str] | None = None,
    ) -> list[np.ndarray]:
        describe = self.lingual_weight > 0 and self.lingual.attention is not None
        features = None
        if self.lingual is not None:
            if sentences is None:
                raise ValueError(f"{self.name} tracks from a sentence: give one per sequence")
            # Model III reads the first frames' lingual features twice (box, then target): one trunk pass
            features = self.lingual.frame_features(list(images), self.amp) if describe else None
            boxes = list(self.lingual.ground(list(images), list(sentences), self.amp, features))
        if boxes is None or any(b is None for b in boxes):
            raise ValueError(f"{self.name} needs a first-frame box (or a lingual network and sentences)")
        boxes = [np.asarray(b, dtype=np.float64) for b in boxes]
        for b in boxes:
            if not (np.isfinite(b).all() and b[2] > 0 and b[3] > 0):
                raise ValueError(f"{self.name} needs an initial box of positive size, got {b.tolist()}")
        hp = self.model.hparams
        crops = [crop_region(im, b[:2] + b[2:] / 2, b[2:] * hp.exemplar_context, hp.exemplar_size)[0]
                 for im, b in zip(images, boxes)]
        with torch.autocast(self.model.mean.device.type, dtype=torch.bfloat16, enabled=self.amp):
            self.filters = self.model.filters(self._batch(crops))
        self.centres = [b[:2] + b[2:] / 2 for b in boxes]
        self.sizes = [b[2:].copy() for b in boxes]
        self.factors = [1.0] * len(boxes)
        if self.lingual_weight:
            self.sentences = list(sentences)
            self.targets = self.lingual.describe_targets(list(images), boxes, self.amp, features) if describe else None
            if self.cache_sentences:
                self.codes = self.lingual.sentence_codes(self.sentences, self.targets, self.amp)
        return boxes

    @torch.no_grad()
    def update_batch(self, images: Sequence[ImageLike | None]) -> list[np.ndarray | None]:
        hp = self.model.hparams
        active = [k for k, image in enumerate(images) if image is not None]
        out: list[np.ndarray | None] = [None] * len(images)
        if not active:
            return out
        n = len(self.scales)
        device = self.model.mean.device
        frames = [to_device(np.ascontiguousarray(images[k]), device).permute(2, 0, 1) for k in active]
        centres = np.repeat(np.stack([self.centres[k] for k in active]), n, 0)
        regions = np.concatenate([self.sizes[k] * hp.search_context * self.scales[:, None] for k in active])
        crops = crop_regions(frames, centres, regions, [i for i in range(len(active)) for _ in range(n)],
                             hp.search_size)  # all sequences and scales in one roi_align, where the model is
        rows = slice(None) if len(active) == len(images) else to_device(active, device)
        filters = self.filters[rows].repeat_interleave(n, 0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp):
            features = self.model.features(crops)
        scores = self.model.correlate(filters.float(), features.float())  # float32: the peak as the official's
        penalised = scores * self.penalties.to(scores.device).repeat(len(active))[:, None, None, None]
        # the penalised raw scores (Model III: the visual probability mixed with the lingual one)
        response = torch.sigmoid(self.model.logits(penalised)) if self.lingual_weight else penalised
        cells = response.shape[-1]
        up = cells * self.upsample
        if up != cells:
            response = F.interpolate(response, size=(up, up), mode="bicubic", align_corners=True)
        response = response[:, 0].view(len(active), n, up, up)
        offset, stride = self.model.cell_centres(cells)
        step = stride * (cells - 1) / (up - 1) if up > 1 else 0.0  # crop pixels between response positions
        if self.lingual_weight:
            lingual = self._lingual_at_cells(frames, active, rows, centres, regions, offset, step, up)
            response = (1 - self.lingual_weight) * response + self.lingual_weight * lingual
        response = response.cpu().numpy()
        for i, k in enumerate(active):
            best, row, col = np.unravel_index(int(np.argmax(response[i])), (n, up, up))  # first maximum, as numpy's
            position = offset + np.array([col, row]) * step  # the peak in search-crop pixels
            region = regions[i * n + best]
            peak = self.centres[k] - region / 2 + position * region / hp.search_size  # frame pixels
            size = self.sizes[k] * self.scales[best]
            h, w = images[k].shape[:2]
            x1 = np.maximum(peak - size / 2, 0.0)
            x2 = np.minimum(x1 + size, [w, h])
            out[k] = np.concatenate([x1, x2 - x1])
            self.centres[k] = (x1 + x2) / 2
            self.factors[k] = (1 - self.scale_lr) * self.factors[k] + self.scale_lr * self.scales[best]
            self.sizes[k] = self.sizes[k] * self.factors[k]
        return out

    def _lingual_at_cells(self, frames, active, rows, centres, regions, offset, step, up):  # noqa: ANN001, ANN202
        """The lingual network's response over the active sequences' whole ``frames`` (already on the device),
        read at the frame positions of every response position of every search crop: (A, scales, up, up)."""
        hp, n = self.model.hparams, len(self.scales)
        device = frames[0].device
        place = np.repeat([self.lingual.placement(f) for f in frames], n, 0)  # frame pixels -> lingual input pixels
        u_host = offset + np.arange(up) * step - hp.search_size / 2  # crop pixels from the crop centre
        packed = to_device(np.concatenate([u_host, centres.ravel(), regions.ravel(), place.ravel()]), device,
                           torch.float32)  # one copy, before the lingual network's work is queued
        u, c, r, place = packed.split([up, centres.size, regions.size, place.size])
        c, r, place = c.view(-1, 2), r.view(-1, 2) / hp.search_size, place.view(-1, 4)
        if self.codes is not None:
            maps = self.lingual.responses(frames, None, None, self.amp, codes=self.codes[rows])
        else:
            targets = None if self.targets is None else self.targets[rows]
            maps = self.lingual.responses(frames, [self.sentences[k] for k in active], targets, self.amp)
        s = self.lingual.hparams.input_size
        gx = ((c[:, 0:1] + u[None] * r[:, 0:1]) * place[:, 0:1] + place[:, 2:3]) / s * 2 - 1  # grid_sample's [-1, 1]
        gy = ((c[:, 1:2] + u[None] * r[:, 1:2]) * place[:, 1:2] + place[:, 3:4]) / s * 2 - 1
        grid = torch.stack([gx[:, None, :].expand(-1, up, -1), gy[:, :, None].expand(-1, -1, up)], -1)
        grid = grid.view(len(active), n * up, up, 2)
        sampled = F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return sampled.view(len(active), n, up, up)

