"""The lingual specification network (Li et al., CVPR 2017, Sec. 3.1): a sentence becomes a dynamic 1x1
filter, sigmoid(FC(h_T)), applied to a fully convolutional VGG16 map of the frame (16 x 16 at 512 x 512)
concatenated with the 8-channel spatial map; the response, upsampled to the frame, is trained with sigmoid
cross-entropy against the target region, and the box is read from it (largest region above half the
maximum). Model I runs it on every frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from zoo.lang_tracker.labels import box_from_response
from zoo.module import ZooModule, hparams_optimizer
from zoo.nn.backbones import IMAGENET_MEAN, IMAGENET_STD, load_weights
from zoo.nn.dynamic import DynamicFilter, spatial_map
from zoo.nn.text import MAX_TOKENS, SentenceEncoder, Vocabulary, word_vectors
from zoo.registry import register_model


def vgg16_fcn(pretrained: bool = True) -> tuple[nn.Module, int]:
    """VGG16 conv1_1 .. pool5, stride 32 (16 x 16 at 512 x 512).

    Choice: the map is pool5 (512 channels); the fc6/fc7 convolutions of Hu et al.'s segmentation net are
    left out."""
    vgg = torchvision.models.vgg16()
    if pretrained:
        vgg.load_state_dict(load_weights(torchvision.models.VGG16_Weights.IMAGENET1K_V1))
    return vgg.features, 512


def tiny_fcn(width: int = 32) -> tuple[nn.Module, int]:
    """A small stride-8 CNN (16 x 16 at 128 x 128) for CPU runs."""
    layers: list[nn.Module] = []
    channels = [3, width // 2, width, width]
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(True), nn.MaxPool2d(2)]
    layers += [nn.Conv2d(width, width, 3, padding=1)]  # no final ReLU: signed features for positive filters
    return nn.Sequential(*layers), width


class LingualSpecification(ZooModule):
    """Grounds a sentence in a frame: ``forward(images, tokens)`` gives response logits at map resolution.

    The vocabulary is a constructor argument (saved with the checkpoint); ``word_vectors`` optionally
    initialises the embeddings from a word2vec file (gensim).
    """

    def __init__(
        self,
        vocab: list[str] | None = None,
        backbone: str = "vgg16",
        pretrained_backbone: bool = True,
        input_size: int = 512,
        width: int = 32,
        embed_dim: int = 300,
        hidden: int = 1000,
        max_tokens: int = MAX_TOKENS,
        word_vectors_path: str | None = None,
        optimizer: str = "sgd",
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if backbone == "vgg16":
            self.trunk, channels = vgg16_fcn(pretrained_backbone)
        elif backbone == "tiny":
            self.trunk, channels = tiny_fcn(width)
        else:
            raise ValueError(f"backbone must be 'vgg16' or 'tiny', not {backbone!r}")
        self.text: SentenceEncoder | None = None
        if vocab is not None:
            self._build_text(vocab)
        self.filter = DynamicFilter(hidden, channels + 8)
        # Choice: a learned scale and bias on the response, since filters in (0, 1) on unit-norm features
        # cannot otherwise reach confident logits
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.bias = nn.Parameter(torch.tensor(-2.0))

    def _build_text(self, words: list[str]) -> None:
        hp = self.hparams
        self.vocab = Vocabulary(words)
        embeddings, embed_dim = None, hp.embed_dim
        if hp.word_vectors_path:
            embeddings, _ = word_vectors(self.vocab, hp.word_vectors_path)
            embed_dim = embeddings.shape[1]
        self.text = SentenceEncoder(len(self.vocab), embed_dim, hp.hidden, embeddings).to(self.mean.device)

    def setup(self, stage: str) -> None:
        """Without a vocabulary, build it from the datamodule's training sentences (saved as a hyperparameter)."""
        if self.text is None:
            dm = self.trainer.datamodule if self.trainer is not None else None
            if dm is None or not hasattr(dm, "train_sentences"):
                raise ValueError("LingualSpecification needs vocab=[...] or a datamodule with train_sentences()")
            words = Vocabulary.build(dm.train_sentences()).words[2:]
            self.hparams["vocab"] = words
            self._build_text(words)

    def tokens(self, sentences: list[str]) -> torch.Tensor:
        ids = [self.vocab.encode(s, self.hparams.max_tokens) for s in sentences]
        return torch.tensor(ids, dtype=torch.long, device=self.mean.device)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, S, S) and (B, T) token ids -> (B, 1, h, w) response logits."""
        x = (images.float() / 255 - self.mean) / self.std
        f = F.normalize(self.trunk(x), dim=1)  # Choice: features L2-normalised over channels
        s = spatial_map(*f.shape[-2:], device=f.device).expand(f.shape[0], -1, -1, -1)
        _, h_t = self.text(tokens)
        return self.scale * self.filter(torch.cat([f, s], 1), h_t) + self.bias

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self(batch["image"], self.tokens(list(batch["sentence"])))
        size = batch["image"].shape[-2:]
        up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return F.binary_cross_entropy_with_logits(up, box_masks(batch["box"], size))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch), prog_bar=True, batch_size=batch["image"].shape[0], sync_dist=True)

    def configure_optimizers(self) -> Any:
        return hparams_optimizer(self)

    @torch.no_grad()
    def ground(self, frames: list[np.ndarray], sentences: list[str], amp: bool = False) -> np.ndarray:
        """Boxes (N, 4: x, y, w, h in frame pixels) of the sentences in RGB frames of any size, in one forward
        pass (``amp``: bf16 autocast)."""
        s, device = self.hparams.input_size, self.mean.device
        images = torch.cat([
            F.interpolate(torch.from_numpy(np.ascontiguousarray(f)).to(device).permute(2, 0, 1)[None].float(),
                          size=(s, s), mode="bilinear", align_corners=False).clamp_(0, 255).to(torch.uint8)
            for f in frames
        ])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = self(images, self.tokens(sentences))
        up = F.interpolate(torch.sigmoid(logits.float()), size=(s, s), mode="bilinear", align_corners=False)[:, 0]
        boxes = []
        for r, f in zip(up.cpu(), frames):
            x, y, w, h = box_from_response(r)
            sx, sy = f.shape[1] / s, f.shape[0] / s
            boxes.append([x * sx, y * sy, w * sx, h * sy])
        return np.asarray(boxes, dtype=np.float64)


    def tracker(self, **kwargs: Any):  # noqa: ANN201
        """Model I: this network grounding the sentence in every frame (``zoo.lang_tracker.LingualTracker``)."""
        from zoo.lang_tracker.tracker import LingualTracker

        return LingualTracker(self, **kwargs)


def box_masks(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 4: x1, y1, x2, y2) boxes -> (B, 1, H, W) float masks, 1 on pixels whose centre is inside."""
    h, w = size
    ys = torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5
    xs = torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5
    b = boxes[:, :, None, None]
    inside_x = (xs[None, None] >= b[:, 0]) & (xs[None, None] < b[:, 2])
    inside_y = (ys[None, :, None] >= b[:, 1]) & (ys[None, :, None] < b[:, 3])
    return (inside_x & inside_y)[:, None].to(boxes.dtype)


@register_model
def lingual_vgg16(**kwargs: Any) -> LingualSpecification:
    """The lingual specification network as in the paper: VGG16 at 512 x 512, LSTM of 1000 units."""
    return LingualSpecification(**{"backbone": "vgg16", "input_size": 512, "hidden": 1000, **kwargs})


@register_model
def lingual_tiny(**kwargs: Any) -> LingualSpecification:
    """The CPU size: a small stride-8 CNN at 128 x 128, LSTM of 64 units, Adam."""
    defaults = dict(backbone="tiny", pretrained_backbone=False, input_size=128, width=32, embed_dim=32, hidden=64,
                    optimizer="adam", lr=3e-3, weight_decay=0.0)
    return LingualSpecification(**{**defaults, **kwargs})
