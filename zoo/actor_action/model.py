"""Actor and action video segmentation from a sentence (Gavrilyuk, Ghodrati, Li and Snoek, CVPR 2018).

A sentence becomes one dynamic filter per decoder resolution, f_r = tanh(W_r T + b_r), from its textual encoding
T (word2vec vectors, a 1D convolution over the words and max pooling over them, Sec. 3.1). A video encoder (I3D on
RGB clips, Sec. 3.2) gives a feature map of the annotated frame's clip, averaged over time, concatenated with the
8-channel spatial map of Hu et al. and L2-normalised. A decoder of transposed convolutions (Sec. 3.3) upsamples it
to the frame size; at every resolution r the response S_r = f_r * V_r (a 1x1 convolution of the decoder's map
with the sentence's filter) is a segmentation at that resolution and is passed on with the map. Training sums
a per-pixel logistic loss over the resolutions (Sec. 3.4).

No official code was released; the sizes below are our choices where the paper is silent, each a parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.metrics.referring import ReferringSegmentationMetrics
from zoo.module import ZooModule, check_datamodule_agrees, hparams_optimizer
from zoo.nn.dynamic import spatial_map
from zoo.nn.i3d import InceptionI3d
from zoo.nn.text import MAX_TOKENS, Vocabulary, vocabulary_vectors, word_embedding
from zoo.registry import register_model

MODALITIES = ("rgb", "rgb+flow")  # as datamodules.clips.MODALITIES, which prepares the inputs


class SentenceCNN(nn.Module):
    """Textual encoder (Sec. 3.1): fixed word vectors, one 1D convolution of ``kernel`` words, ReLU, and max
    pooling over the positions whose window ends on a word (left padding is ignored). Choice: kernel 2 and
    ``channels`` outputs; the embeddings train only when no word vectors are given (``freeze=False``)."""

    def __init__(self, vocab_size: int, embed_dim: int = 300, channels: int = 1000, kernel: int = 2,
                 embeddings: torch.Tensor | None = None, freeze: bool = True) -> None:
        super().__init__()
        self.embed = word_embedding(vocab_size, embed_dim, embeddings)
        self.embed.weight.requires_grad_(not freeze)
        self.conv = nn.Conv1d(embed_dim, channels, kernel)
        self.kernel = kernel

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids, left-padded with 0 -> (B, channels)."""
        x = F.relu(self.conv(self.embed(tokens).transpose(1, 2)))  # (B, channels, L - kernel + 1)
        words = tokens[:, self.kernel - 1 :] != 0
        return x.masked_fill(~words[:, None], float("-inf")).amax(-1).nan_to_num(0.0, neginf=0.0)


def tiny_video_encoder(width: int = 16, in_channels: int = 3) -> tuple[nn.Module, int, int]:
    """A small 3D CNN for CPU runs: stride 8 in space, 4 in time; ``width * 4`` channels."""
    layers: list[nn.Module] = []
    chans = [in_channels, width, width * 2, width * 4]
    strides = [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
    for c_in, c_out, stride in zip(chans[:-1], chans[1:], strides):
        layers += [nn.Conv3d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm3d(c_out), nn.ReLU(True)]
    layers += [nn.Conv3d(chans[-1], chans[-1], 3, 1, 1)]
    return nn.Sequential(*layers), chans[-1], 8


class DynamicDecoder(nn.Module):
    """Transposed convolutions from the encoder map (``in_channels``, the spatial map included) up by
    ``2 ** len(channels)``, to maps of ``channels``; at each resolution r a
    dynamic 1x1 filter f_r = tanh(W_r T + b_r) gives the response S_r, which is concatenated to the map before
    the next upsampling. Choice: each transposed convolution is 4 x 4 with stride 2, followed by batch norm
    (``norm``) and ReLU; each
    response has a learned scale and bias (filters bounded by 1 on unit-norm maps cannot reach confident
    logits otherwise)."""

    def __init__(self, in_channels: int, channels: list[int], text_dim: int, norm: bool = False,
                 refine: bool = True) -> None:
        super().__init__()
        self.refine = refine
        dims = [in_channels] + list(channels)
        self.filters = nn.ModuleList(nn.Linear(text_dim, d) for d in dims)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(d_in + 1, d_out, 4, 2, 1, bias=not norm),
                          nn.BatchNorm2d(d_out) if norm else nn.Identity())
            for d_in, d_out in zip(dims, dims[1:])
        )
        # the coarsest response starts confident (scale 10, bias -2); with ``refine`` the finer ones start at zero,
        # so the untrained output is the upsampled coarse segmentation rather than noise from untrained maps
        start = torch.zeros(len(dims)) if refine else torch.ones(len(dims))
        start[0] = 1.0
        self.scale = nn.Parameter(10.0 * start)
        self.bias = nn.Parameter(-2.0 * start)

    def forward(self, visual: torch.Tensor, text: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, h, w) L2-normalised encoder map with its spatial map, (B, text_dim) -> one (B, 1, h_r, w_r)
        response (logits) per resolution, coarse to fine."""
        x, responses = visual, []
        for r, fc in enumerate(self.filters):
            f = torch.tanh(fc(text))
            s = torch.einsum("bchw,bc->bhw", x, f)[:, None] * self.scale[r] + self.bias[r]
            if self.refine and responses:
                s = s + F.interpolate(responses[-1], size=s.shape[-2:], mode="bilinear", align_corners=False)
            responses.append(s)
            if r < len(self.ups):
                x = F.relu(self.ups[r](torch.cat([x, s], 1)))
        return responses


class ActorActionSegmentation(ZooModule):
    """Segments the actor a sentence refers to in the annotated frame of a clip (Gavrilyuk et al., CVPR 2018).

    ``backbone="i3d"``: I3D to ``feature_endpoint`` (Mixed_4f: 832 channels at stride 16, so 32 x 32 at 512 x 512)
    with Kinetics-400 weights when ``pretrained_backbone`` (``zoo.load("i3d_inception.kinetics400")``);
    ``"tiny"``: a small 3D CNN of stride 8. ``num_frames=1`` is the image-only variant (the annotated frame
    alone); ``modality="rgb+flow"`` adds a second encoder on the clip's optical flow (the paper's RGB + Flow
    model; choice: the two time-averaged maps are concatenated before the spatial map). The vocabulary is built
    from the datamodule's training sentences when not given and saved with the checkpoint; ``word_vectors_path``
    (word2vec, GoogleNews format) gives fixed embeddings, else they are learned.
    Choices (the paper gives no numbers we could read): Adam at 1e-3 with weight decay 5e-4 (``lr_schedule``:
    constant, or cosine to zero over the run's epochs), every resolution's
    loss weighted 1 (``resolution_weights``), the predicted mask where the probability, resized bilinearly to the
    frame, exceeds ``threshold`` (0.5), and its score (for COCO-style mAP) the mean probability inside it.
    """

    def __init__(
        self,
        vocab: list[str] | None = None,
        backbone: str = "i3d",
        pretrained_backbone: bool = False,
        feature_endpoint: str = "Mixed_4f",
        num_frames: int = 16,
        frame_step: int = 1,
        input_size: int = 512,
        width: int = 16,
        decoder_channels: tuple[int, ...] = (512, 256, 128, 64),
        decoder_norm: bool = False,
        refine: bool = True,
        modality: str = "rgb",
        embed_dim: int = 300,
        text_dim: int = 1000,
        text_kernel: int = 2,
        max_tokens: int = MAX_TOKENS,
        word_vectors_path: str | None = None,
        freeze_embeddings: bool | None = None,
        resolution_weights: tuple[float, ...] | None = None,
        threshold: float = 0.5,
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        lr_schedule: str = "constant",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', not {lr_schedule!r}")
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
        self.encoder, channels = self._encoder(3)
        self.flow_encoder: nn.Module | None = None
        if modality == "rgb+flow":
            self.flow_encoder, flow_channels = self._encoder(2)
            channels += flow_channels
        if pretrained_backbone and backbone == "i3d":
            self._load_kinetics()
        if input_size % self.stride or self.stride != 2 ** len(decoder_channels):
            raise ValueError(f"input_size {input_size} must be a multiple of the encoder's stride {self.stride}, and "
                             f"the decoder needs {int(np.log2(self.stride))} decoder_channels to upsample by it, not "
                             f"{len(decoder_channels)}")
        weights = resolution_weights or (1.0,) * (len(decoder_channels) + 1)
        if len(weights) != len(decoder_channels) + 1:
            raise ValueError(f"resolution_weights needs {len(decoder_channels) + 1} values (one per resolution), "
                             f"not {len(weights)}")
        self.decoder = DynamicDecoder(channels + 8, list(decoder_channels), text_dim, decoder_norm, refine)
        self.text: SentenceCNN | None = None
        if vocab is not None:
            self._build_text(vocab)
        self.val_metrics = ReferringSegmentationMetrics(threshold=threshold)
        self.test_metrics = ReferringSegmentationMetrics(threshold=threshold)

    @classmethod
    def rebuild_kwargs(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """As ``ZooModule.rebuild_kwargs``, and the word vectors are not read again: the checkpoint holds them."""
        return {**super().rebuild_kwargs(kwargs), "word_vectors_path": None}

    def _encoder(self, in_channels: int) -> tuple[nn.Module, int]:
        """A video encoder of ``in_channels`` (3: RGB, 2: flow) and its output channels; sets ``self.stride``."""
        hp = self.hparams
        if hp.backbone == "i3d":
            encoder = InceptionI3d(final_endpoint=hp.feature_endpoint, in_channels=in_channels)
            # an endpoint's block number gives its spatial stride: Conv3d_1a 2, Mixed_3c 8, Mixed_4f 16, Mixed_5c 32
            self.stride = 2 ** int(hp.feature_endpoint.split("_")[1][0])
            return encoder, encoder.channels[hp.feature_endpoint]
        if hp.backbone == "tiny":
            encoder, channels, self.stride = tiny_video_encoder(hp.width, in_channels)
            return encoder, channels
        raise ValueError(f"backbone must be 'i3d' or 'tiny', not {hp.backbone!r}")

    def _load_kinetics(self) -> None:
        """DeepMind's Kinetics-400 RGB I3D into the RGB encoder; the flow encoder, for which no Kinetics flow weights
        are available offline, starts from the same weights with conv1 averaged over RGB and repeated for the two
        flow channels (the cross-modality initialisation of Wang et al., ECCV 2016)."""
        from zoo.loading import load

        state = load("i3d_inception.kinetics400", final_endpoint=self.hparams.feature_endpoint).net.state_dict()
        self.encoder.load_state_dict(state)
        if self.flow_encoder is not None:
            first = "Conv3d_1a_7x7.conv.weight"
            flow = {**state, first: state[first].mean(1, keepdim=True).repeat(1, 2, 1, 1, 1)}
            self.flow_encoder.load_state_dict(flow)

    def _build_text(self, words: list[str]) -> None:
        hp = self.hparams
        self.vocab, embeddings, embed_dim = vocabulary_vectors(words, hp.word_vectors_path, hp.embed_dim)
        freeze = embeddings is not None if hp.freeze_embeddings is None else hp.freeze_embeddings
        # what was used, so the checkpoint rebuilds without the vectors file (``rebuild_kwargs``)
        self.hparams["embed_dim"], self.hparams["freeze_embeddings"] = embed_dim, freeze
        self.text = SentenceCNN(len(self.vocab), embed_dim, hp.text_dim, hp.text_kernel, embeddings,
                                freeze=freeze).to(self.decoder.scale.device)

    def setup(self, stage: str) -> None:
        """Without a vocabulary, build it from the datamodule's training sentences (saved as a hyperparameter)."""
        if self.text is None:
            dm = self.trainer.datamodule if self.trainer is not None else None
            if dm is None or not hasattr(dm, "train_sentences"):
                raise ValueError("ActorActionSegmentation needs vocab=[...] or a datamodule with train_sentences()")
            self.build_vocabulary(dm.train_sentences())

    def build_vocabulary(self, sentences: list[str]) -> None:
        """The vocabulary of ``sentences`` (saved as the ``vocab`` hyperparameter) and a new textual encoder."""
        words = Vocabulary.build(sentences).words[2:]
        self.hparams["vocab"] = words
        self._build_text(words)

    def tokens(self, sentences: list[str], sources: list[str] | None = None) -> torch.Tensor:
        """(B, max_tokens) ids; a sentence of unknown words only is encoded as ``<unk>`` with a warning naming its
        source (``file:line`` from the datasets)."""
        if self.text is None:
            raise ValueError("this model has no vocabulary: train it (the datamodule's sentences give one) or build "
                             "it with vocab=[...]")
        sources = sources or ["sentence"] * len(sentences)
        ids = [self.vocab.encode(s, self.hparams.max_tokens, source=src) for s, src in zip(sentences, sources)]
        return torch.tensor(ids, dtype=torch.long, device=self.decoder.scale.device)

    def visual(self, clip: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (B, 3, T, S, S) (and with ``rgb+flow`` float (B, 2, T, S, S) flow in [-1, 1]) -> (B, C + 8,
        S / stride, S / stride): encoder maps averaged over time (RGB and flow concatenated), the spatial map
        concatenated, L2-normalised over channels."""
        v = self.encoder(clip.float() / 127.5 - 1.0).mean(2)
        if self.flow_encoder is not None:
            if flow is None:
                raise ValueError("this model reads RGB and flow (modality='rgb+flow'): pass the clips' flow")
            v = torch.cat([v, self.flow_encoder(flow.to(v.device, v.dtype)).mean(2)], 1)
        s = spatial_map(*v.shape[-2:], device=v.device).expand(v.shape[0], -1, -1, -1).to(v.dtype)
        return F.normalize(torch.cat([v, s], 1), dim=1)

    def forward(self, clip: torch.Tensor, tokens: torch.Tensor, flow: torch.Tensor | None = None
                ) -> list[torch.Tensor]:
        """uint8 clips (B, 3, T, S, S) and (B, L) token ids (and flow, see ``visual``) -> response logits per
        resolution, the last at S x S."""
        return self.decoder(self.visual(clip, flow), self.text(tokens))

    def loss(self, responses: list[torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
        """Per-pixel logistic loss summed over resolutions; targets are the (B, S, S) masks averaged down."""
        weights = self.hparams.resolution_weights or (1.0,) * len(responses)
        total = responses[0].new_zeros(())
        for w, r in zip(weights, responses):
            target = F.adaptive_avg_pool2d(masks[:, None].float(), r.shape[-2:])
            total = total + w * F.binary_cross_entropy_with_logits(r.float(), target)
        return total

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        tokens = self.tokens(batch["sentence"], batch.get("source"))
        loss = self.loss(self(batch["clip"], tokens, batch.get("flow")), batch["mask"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["sentence"]))
        return loss

    @torch.no_grad()
    def segment(self, clip: torch.Tensor, sentences: list[str], sources: list[str] | None = None,
                flow: torch.Tensor | None = None) -> torch.Tensor:
        """Probabilities (B, S, S) of the referred actor in the annotated frame of each clip."""
        tokens = self.tokens(sentences, sources)
        return torch.sigmoid(self(clip.to(self.decoder.scale.device), tokens, flow)[-1][:, 0].float())

    def full_size(self, probs: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Each (S, S) probability map resized (bilinear) to its frame's (H, W); the mask is where it exceeds
        ``threshold`` (the metrics' rule) and its score the mean probability inside."""
        return resize_maps(probs, sizes)

    def _evaluate(self, batch: dict[str, Any], metrics: ReferringSegmentationMetrics) -> list[torch.Tensor]:
        probs = self.full_size(self.segment(batch["clip"], batch["sentence"], batch.get("source"), batch.get("flow")),
                               [tuple(g.shape) for g in batch["gt"]])
        metrics.update(probs, [g.to(p.device) for p, g in zip(probs, batch["gt"])], ids=batch["index"].tolist())
        return probs

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics, "test")

    def _log_metrics(self, metrics: ReferringSegmentationMetrics, stage: str) -> None:
        if not metrics.update_called:
            return
        result = metrics.compute()
        for key in ("mean_iou", "overall_iou", "map_paper", "map_coco", "P@0.5"):
            if key in result:
                self.log(f"{stage}/{key}", float(result[key]), prog_bar=key == "mean_iou")
        metrics.reset()

    def on_fit_start(self) -> None:
        check_datamodule_agrees(self, ("num_frames", "frame_step", "input_size", "modality"))

    def on_validation_start(self) -> None:
        self.on_fit_start()

    def on_test_start(self) -> None:
        self.on_fit_start()

    def configure_optimizers(self) -> Any:
        optimizer = hparams_optimizer(self)
        if self.hparams.lr_schedule == "constant":
            return optimizer
        epochs = int(self.trainer.max_epochs or 0)
        if epochs < 1:
            raise ValueError("lr_schedule 'cosine' decays over trainer.max_epochs: set it (not -1)")
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)}


def resize_maps(maps: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """(B, S, S) maps resized bilinearly to each frame's (H, W)."""
    return [F.interpolate(m[None, None], size=tuple(hw), mode="bilinear", align_corners=False)[0, 0]
            for m, hw in zip(maps, sizes)]


FAITHFUL = dict(backbone="i3d", feature_endpoint="Mixed_4f", num_frames=16, input_size=512,
                decoder_channels=(512, 256, 128, 64), embed_dim=300, text_dim=1000)
TINY = dict(backbone="tiny", pretrained_backbone=False, num_frames=8, input_size=64, width=16,
            decoder_channels=(32, 16, 8), embed_dim=32, text_dim=64, lr=1e-3, weight_decay=0.0)


@register_model
def actor_action_i3d(**kwargs: Any) -> ActorActionSegmentation:
    """The paper's RGB model: I3D (Mixed_4f) on 16 frames of 512 x 512, word2vec + 1D CNN sentences, dynamic
    filters at 32, 64, 128, 256 and 512 px; ``pretrained_backbone=True`` starts from Kinetics-400 weights."""
    return ActorActionSegmentation(**{**FAITHFUL, **kwargs})


@register_model
def actor_action_tiny(**kwargs: Any) -> ActorActionSegmentation:
    """The CPU size: a small 3D CNN on 8 frames of 64 x 64, learned word embeddings, filters at 8 to 64 px."""
    return ActorActionSegmentation(**{**TINY, **kwargs})
