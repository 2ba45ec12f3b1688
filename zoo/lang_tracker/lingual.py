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

from zoo.errors import CheckpointError
from zoo.hub import load_checkpoint_file
from zoo.lang_tracker.crops import fit_square, frame_size
from zoo.lang_tracker.labels import box_from_response
from zoo.loading import apply_state_dict, checkpoint_state_dict
from zoo.module import ZooModule, check_datamodule_agrees, hparams_optimizer, weight_bias_groups
from zoo.nn.backbones import load_weights
from zoo.nn.dynamic import DynamicFilter, spatial_map
from zoo.nn.preprocessing import CAFFE_VGG_MEAN, input_normalization
from zoo.nn.text import MAX_TOKENS, SentenceEncoder, Vocabulary, vocabulary_vectors
from zoo.nn.transfer import to_device
from zoo.registry import register_model

VGG16_CONV_LAYERS = 31  # conv1_1 .. pool5: the first modules of vgg16_fcn, len(torchvision's vgg16().features)


def vgg16_fcn(pretrained: bool = False) -> tuple[nn.Module, int]:
    """VGG16 made fully convolutional as in the official code: conv1_1 .. pool5, then fc6 as a 7 x 7 convolution
    (padding 3), fc7 and fc8 as 1 x 1 convolutions with the classifier's weights (ImageNet's if ``pretrained``);
    fc8's 1000 channels at stride 32 (16 x 16 at 512 x 512). Dropout is left out."""
    vgg = torchvision.models.vgg16()
    if pretrained:
        vgg.load_state_dict(load_weights(torchvision.models.VGG16_Weights.IMAGENET1K_V1))
    fc6, fc7, fc8 = vgg.classifier[0], vgg.classifier[3], vgg.classifier[6]
    convs = [nn.Conv2d(512, 4096, 7, padding=3), nn.Conv2d(4096, 4096, 1), nn.Conv2d(4096, 1000, 1)]
    for conv, fc in zip(convs, (fc6, fc7, fc8)):
        conv.weight.data.copy_(fc.weight.data.view(conv.weight.shape))
        conv.bias.data.copy_(fc.bias.data)
    return nn.Sequential(*vgg.features, convs[0], nn.ReLU(True), convs[1], nn.ReLU(True), convs[2]), 1000


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
    initialises the embeddings from a word2vec file (gensim). Training follows the official code
    (``lang_seg_low_res_model``): VGG16's convolutions fixed (``freeze_backbone``; fc6-fc8 train; the tiny trunk
    always trains), Adam at lr 1e-3 with weight decay 5e-4.

    Frames enter at ``input_size`` square; with ``keep_aspect`` (the official ``resize_and_pad``) they keep their
    aspect ratio between zero padding, else they are stretched. ``preprocessing``: torchvision's ImageNet
    normalisation (the default, for torchvision's weights) or ``"caffe"``, 0-255 pixels less the VGG mean pixel
    (``channel_mean``), as the authors' Caffe weights expect (``zoo convert caffe``).

    ``upsample="deconv"`` is the official second, high-resolution stage (``lang_seg_model``): the response is
    upsampled by a learned transposed convolution (kernel 2s, stride s for a trunk of stride s; 64 / 32 for
    VGG16), trained at full resolution from the first stage's weights (``init_weights``, a checkpoint of this
    class) with VGG16 fixed and Adam at 1e-4. ``deconv_init``: its kernel starts at zero as the official one (no
    ``weight_filler``: Caffe's constant 0), or ``"bilinear"`` (FCN's; the second stage starts where the first ends).

    As released (``demo/lang_seg_model.prototxt``, ``lang_seg_model.py``; the named parameters keep other choices):
    fc8 enters the dynamic filter as it is, with no L2 normalisation (``normalize``; the stale
    ``proto_train.prototxt`` / ``test.prototxt`` normalise, but they are text_objseg's MLP, not this network);
    the response is the dynamic 1x1 convolution alone, no scale or bias (``response_affine``); word embeddings and
    LSTM of 1000 (``embed_dim``, ``hidden``), sentences of 20 tokens left-padded (``max_tokens``), the LSTM
    starting at the first word (``skip_padding``: Caffe's ``cont`` input); Caffe's fillers (``weight_init``:
    embeddings and LSTM uniform in +-0.08 with zero biases, the filter's FC Xavier with a zero bias); the loss is
    Caffe's ``SigmoidCrossEntropyLoss``, summed over the pixels and divided by the batch size
    (``loss_reduction="batch"``; ``"mean"``: per pixel); the first stage is trained at the response map's
    resolution against cells holding any target pixel (``loss_resolution="map"``, the official ``label_coarse``:
    ``downscale_local_mean(mask, 32) > 0``; ``"input"``: bilinearly upsampled logits against the full mask).

    Choice (tiny size only, ``TINY``): ``filter_activation="tanh"``. With a trunk trained from scratch, the paper's
    sigmoid filters (positive weights) never come to depend on the sentence: the LSTM saturates in the first
    epoch and one filter serves every sentence (shuffled sentences ground as well as the true ones). Signed
    filters learn to read the sentence. The tiny preset also keeps the zoo's earlier choices where the released ones
    train it worse on the synthetic OTB99-lang of tests/test_lang.py (first-frame grounding of held-out sentences,
    mean IoU; Model I's AUC on 40 held-out videos): L2-normalised features with the learned scale and bias and the
    loss on the upsampled response (``normalize``, ``response_affine``, ``loss_resolution="input"``: 0.40 against
    0.28 with the released three, 0.30 with only the loss resolution kept, 0.33 with only the first two), and
    ``loss_reduction="mean"``, ``skip_padding=False``, ``weight_init="torch"`` (Model I 0.275 against 0.261 with
    the released reduction, 0.243 with the padding skipped too, 0.224 with Caffe's fillers too);
    ``deconv_init="bilinear"``.
    """

    def __init__(
        self,
        vocab: list[str] | None = None,
        backbone: str = "vgg16",
        pretrained_backbone: bool = False,
        input_size: int = 512,
        keep_aspect: bool = True,
        width: int = 32,
        embed_dim: int = 1000,
        hidden: int = 1000,
        max_tokens: int = MAX_TOKENS,
        word_vectors_path: str | None = None,
        attention: bool = False,
        attention_dim: int = 512,
        normalize: bool = False,
        filter_activation: str = "sigmoid",
        freeze_backbone: bool = True,
        upsample: str = "bilinear",
        init_weights: str | None = None,
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        bias_lr_factor: float = 2.0,
        response_affine: bool = False,
        skip_padding: bool = True,
        weight_init: str = "caffe",
        loss_reduction: str = "batch",
        loss_resolution: str = "map",
        deconv_init: str = "zero",
        preprocessing: str = "torchvision",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["init_weights"])  # the weights travel in the checkpoint itself
        mean, std = input_normalization(preprocessing, CAFFE_VGG_MEAN)  # "caffe": as the authors' weights expect
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        if backbone == "vgg16":
            (self.trunk, channels), self.stride = vgg16_fcn(pretrained_backbone), 32
        elif backbone == "tiny":
            (self.trunk, channels), self.stride = tiny_fcn(width), 8
        else:
            raise ValueError(f"backbone must be 'vgg16' or 'tiny', not {backbone!r}")
        if freeze_backbone and backbone == "vgg16":  # conv1_1 .. pool5, the official fix_vgg; tiny trunks train
            self.trunk[:VGG16_CONV_LAYERS].requires_grad_(False)
        for name, value, allowed in (("weight_init", weight_init, WEIGHT_INITS),
                                     ("loss_reduction", loss_reduction, LOSS_REDUCTIONS),
                                     ("loss_resolution", loss_resolution, LOSS_RESOLUTIONS),
                                     ("deconv_init", deconv_init, DECONV_INITS), ("upsample", upsample, UPSAMPLES)):
            if value not in allowed:
                raise ValueError(f"{name} must be {' or '.join(map(repr, allowed))}, not {value!r}")
        self.text: SentenceEncoder | None = None
        if vocab is not None:
            self._build_text(vocab)
        self.filter = DynamicFilter(hidden, channels + 8, filter_activation)
        if weight_init == "caffe":  # dyn_l: weight_filler xavier (uniform, fan-in), bias_filler default constant 0
            nn.init.uniform_(self.filter.fc.weight, -(3 / hidden) ** 0.5, (3 / hidden) ** 0.5)
            nn.init.zeros_(self.filter.fc.bias)
        self.attention = WordAttention(hidden, channels, attention_dim) if attention else None
        # Choice (response_affine, tiny preset): a learned scale and bias on the response, since filters bounded by 1
        # on unit-norm features cannot otherwise reach confident logits
        self.scale = nn.Parameter(torch.tensor(10.0)) if response_affine else None
        self.bias = nn.Parameter(torch.tensor(-2.0)) if response_affine else None
        self.upsampler = None
        if upsample == "deconv":
            self.upsampler = nn.ConvTranspose2d(1, 1, 2 * self.stride, self.stride, self.stride // 2, bias=False)
            if deconv_init == "bilinear":
                self.upsampler.weight.data.copy_(bilinear_kernel(2 * self.stride))
            else:
                nn.init.zeros_(self.upsampler.weight)
        if init_weights:
            self._load_first_stage(init_weights)

    @classmethod
    def rebuild_kwargs(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """As ``ZooModule.rebuild_kwargs``; a checkpoint from before the released defaults (no ``response_affine``
        saved) had the learned scale and bias and an LSTM over the padding, and is rebuilt so."""
        kwargs = super().rebuild_kwargs(kwargs)
        if "response_affine" not in kwargs:
            kwargs = {**kwargs, "response_affine": True, "skip_padding": False}
        return kwargs

    def _load_first_stage(self, path: str) -> None:
        """Weights (and, without one given, the vocabulary) of a first-stage checkpoint; only the upsampling
        may be new."""
        ckpt = load_checkpoint_file(path)
        state = checkpoint_state_dict(ckpt, path)
        if self.text is None:
            words = (ckpt.get("hyper_parameters") or {}).get("vocab")
            if not words:
                raise CheckpointError(f"{path}: no vocabulary in the checkpoint; pass vocab=[...]")
            self.hparams["vocab"] = list(words)
            self._build_text(list(words))
        missing, unexpected = apply_state_dict(self, state, False, path)
        wrong = [k for k in missing if not k.startswith("upsampler.")] + list(unexpected)
        if wrong:
            raise CheckpointError(f"{path}: weights do not fit this lingual network: {', '.join(wrong[:5])}")

    def upsampled(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Response logits at map resolution -> logits at ``size``: learned (``deconv``) or bilinear."""
        if self.upsampler is not None:
            logits = self.upsampler(logits)
            if tuple(logits.shape[-2:]) == tuple(size):
                return logits
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def _build_text(self, words: list[str]) -> None:
        hp = self.hparams
        self.vocab, embeddings, embed_dim = vocabulary_vectors(words, hp.word_vectors_path, hp.embed_dim)
        self.text = SentenceEncoder(len(self.vocab), embed_dim, hp.hidden, embeddings,
                                    skip_padding=hp.skip_padding)
        if hp.weight_init == "caffe":  # embed and lstm: uniform in +-0.08, biases constant 0 (Caffe's)
            if embeddings is None:
                nn.init.uniform_(self.text.embed.weight, -0.08, 0.08)
                self.text.embed.weight.data[0] = 0  # <pad>: no gradient (padding_idx); skipped with skip_padding
            for name, param in self.text.lstm.named_parameters():
                (nn.init.zeros_ if name.startswith("bias") else lambda w: nn.init.uniform_(w, -0.08, 0.08))(param)
        self.text.to(self.mean.device)

    def setup(self, stage: str) -> None:
        """Without a vocabulary, take the datamodule's (``vocabulary()``: a released one, such as ReferIt's 8,803
        words) or build it from its training sentences; either is saved as a hyperparameter."""
        if self.text is None:
            dm = self.trainer.datamodule if self.trainer is not None else None
            if hasattr(dm, "vocabulary"):
                words = list(dm.vocabulary())
            elif hasattr(dm, "train_sentences"):
                words = Vocabulary.build(dm.train_sentences()).words[2:]
            else:
                raise ValueError("LingualSpecification needs vocab=[...] or a datamodule with vocabulary() or "
                                 "train_sentences()")
            self.hparams["vocab"] = words
            self._build_text(words)

    def tokens(self, sentences: list[str]) -> torch.Tensor:
        if self.text is None:
            raise ValueError("this lingual network has no vocabulary: train it (the datamodule's sentences give "
                             "one) or build it with vocab=[...]")
        ids = [self.vocab.encode(s, self.hparams.max_tokens, warn=not self.training) for s in sentences]
        return to_device(ids, self.mean.device, torch.long)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> (B, C, h, w) trunk features, L2-normalised over channels with ``normalize``."""
        f = self.trunk((images.float() / 255 - self.mean) / self.std)
        return F.normalize(f, dim=1) if self.hparams.normalize else f

    def target_features(self, features: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """(B, C) mean of ``features`` inside (B, 4: x1, y1, x2, y2 in input pixels) boxes: what the word
        attention of Model III is conditioned on."""
        stride = self.hparams.input_size / features.shape[-1]
        rois = torch.cat([torch.arange(len(boxes), device=boxes.device, dtype=boxes.dtype)[:, None], boxes], 1)
        pooled = torchvision.ops.roi_align(features.float(), rois.float(), 3, 1 / stride, aligned=True)
        return pooled.mean((2, 3)).to(features.dtype)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, target: torch.Tensor | None = None
                ) -> torch.Tensor:
        """uint8 (B, 3, S, S) and (B, T) token ids -> (B, 1, h, w) response logits. With ``target`` (B, C)
        features of the target (``target_features``), the sentence is the word-attention average of the
        LSTM states (Model III); without, it is h_T."""
        return self.respond(self.features(images), tokens, target)

    def respond(self, f: torch.Tensor, tokens: torch.Tensor | None, target: torch.Tensor | None = None,
                sentence: torch.Tensor | None = None) -> torch.Tensor:
        """``forward`` from trunk features; ``sentence``: the ``sentence_code`` of ``tokens`` and ``target`` when
        already computed (a tracker's sentence and target do not change from frame to frame)."""
        s = spatial_map(*f.shape[-2:], device=f.device).expand(f.shape[0], -1, -1, -1)
        h_t = self.sentence_code(tokens, target) if sentence is None else sentence
        response = self.filter(torch.cat([f, s], 1), h_t)
        return response if self.scale is None else self.scale * response + self.bias

    def sentence_code(self, tokens: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """(B, hidden) sentence vectors that make the dynamic filters: h_T, or with ``target`` the word-attention
        average of the LSTM states (Model III)."""
        states, h_t = self.text(tokens)
        if target is not None:
            if self.attention is None:
                raise ValueError("this lingual network has no word attention (build it with attention=True)")
            h_t = self.attention(states, target, tokens != 0)
        return h_t

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = self.tokens(list(batch["sentence"]))
        images = batch_images(batch)
        f = self.features(images)
        size = images.shape[-2:]
        # boxes (grounding data) or, from referring-segmentation clips (A2D Sentences), the actor's mask
        masks = batch["mask"][:, None].to(f.dtype) if "mask" in batch else box_masks(batch["box"], size)
        outputs = [self.respond(f, tokens)]
        if self.attention is not None and "box" not in batch:
            raise ValueError("word attention (attention=True) trains on target boxes; these batches have masks only "
                             "(A2D Sentences): build the network with attention=False")
        if self.attention is not None:  # Choice: in training the target features come from the same frame's box
            outputs.append(self.respond(f, tokens, self.target_features(f, batch["box"].to(f))))
        return sum(self.response_loss(o, masks) for o in outputs) / len(outputs)

    def response_loss(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Sigmoid cross-entropy of (B, 1, h, w) response logits against (B, 1, H, W) target masks in input pixels:
        at the map's resolution against cells with any target pixel (first stage, ``loss_resolution="map"``), else
        upsampled (``upsampled``) against the masks; summed and divided by B (``loss_reduction="batch"``, Caffe's
        ``SigmoidCrossEntropyLoss``) or averaged over every pixel (``"mean"``)."""
        hp = self.hparams
        if self.upsampler is None and hp.loss_resolution == "map":
            masks = F.adaptive_max_pool2d(masks, logits.shape[-2:])  # downscale_local_mean(mask) > 0 for 0/1 masks
        else:
            logits = self.upsampled(logits, tuple(masks.shape[-2:]))
        if hp.loss_reduction == "batch":
            return F.binary_cross_entropy_with_logits(logits, masks, reduction="sum") / len(logits)
        return F.binary_cross_entropy_with_logits(logits, masks)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["sentence"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch), prog_bar=True, batch_size=len(batch["sentence"]), sync_dist=True)

    def on_fit_start(self) -> None:
        check_datamodule_agrees(self, ("input_size", "keep_aspect"))

    def configure_optimizers(self) -> Any:
        hp = self.hparams  # biases at 2x the rate, no decay, as the released prototxts (tiny preset: 1x)
        return hparams_optimizer(self, weight_bias_groups(self.named_parameters(), hp.lr, hp.weight_decay,
                                                          hp.bias_lr_factor))

    def placement(self, frame: np.ndarray | torch.Tensor) -> tuple[float, float, float, float]:
        """(sx, sy, px, py) of an (H, W, 3) array or (3, H, W) tensor in the network input (``fit_square``)."""
        return fit_square(*frame_size(frame), self.hparams.input_size, self.hparams.keep_aspect)

    def inputs(self, frames: list[np.ndarray] | list[torch.Tensor]) -> torch.Tensor:
        """RGB frames of any size, (H, W, 3) arrays or (3, H, W) tensors already on the device -> uint8
        (N, 3, S, S) on the model's device, placed as ``placement`` says."""
        s, device = self.hparams.input_size, self.mean.device
        out = torch.zeros(len(frames), 3, s, s, dtype=torch.uint8, device=device)
        for i, f in enumerate(frames):
            sx, sy, px, py = self.placement(f)
            chw = f if isinstance(f, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)
            nh, nw, top, left = round(chw.shape[-2] * sy), round(chw.shape[-1] * sx), int(py), int(px)
            out[i, :, top : top + nh, left : left + nw] = F.interpolate(
                chw.to(device)[None].float(), size=(nh, nw), mode="bilinear", align_corners=False
            ).clamp_(0, 255)[0].to(torch.uint8)
        return out

    def _autocast(self, amp: bool):  # noqa: ANN202
        return torch.autocast(self.mean.device.type, dtype=torch.bfloat16, enabled=amp)

    @torch.no_grad()
    def frame_features(self, frames: list[np.ndarray] | list[torch.Tensor], amp: bool = False) -> torch.Tensor:
        """Trunk features (N, C, h, w) of whole frames (``amp``: bf16), to share between ``ground`` and
        ``describe_targets`` on the same frames."""
        with self._autocast(amp):
            return self.features(self.inputs(frames))

    @torch.no_grad()
    def responses(self, frames: list[np.ndarray] | list[torch.Tensor], sentences: list[str] | None,
                  targets: torch.Tensor | None = None, amp: bool = False, features: torch.Tensor | None = None,
                  codes: torch.Tensor | None = None) -> torch.Tensor:
        """Probabilities (N, 1, h, w) at map resolution over whole frames, in one forward pass (``amp``: bf16);
        ``targets`` as in ``forward``; ``features``: the frames' ``frame_features`` when already computed;
        ``codes``: the sentences' ``sentence_codes`` when already computed (then ``sentences`` is not read)."""
        f = self.frame_features(frames, amp) if features is None else features
        with self._autocast(amp):
            tokens = None if codes is not None else self.tokens(sentences)
            return torch.sigmoid(self.respond(f, tokens, targets, codes).float())

    @torch.no_grad()
    def sentence_codes(self, sentences: list[str], targets: torch.Tensor | None = None, amp: bool = False
                       ) -> torch.Tensor:
        """``sentence_code`` of each sentence (with its target's features for word attention), as ``responses``
        computes it (``amp``: bf16), to reuse frame after frame."""
        with self._autocast(amp):
            return self.sentence_code(self.tokens(sentences), targets)

    @torch.no_grad()
    def describe_targets(self, frames: list[np.ndarray], boxes: list[np.ndarray], amp: bool = False,
                         features: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C) target features of x, y, w, h boxes (frame pixels) for the word attention of Model III."""
        scaled = []
        for frame, b in zip(frames, boxes):
            sx, sy, px, py = self.placement(frame)
            scaled.append([b[0] * sx + px, b[1] * sy + py, (b[0] + b[2]) * sx + px, (b[1] + b[3]) * sy + py])
        f = self.frame_features(frames, amp) if features is None else features
        return self.target_features(f.float(), torch.tensor(scaled, dtype=torch.float32, device=f.device))

    @torch.no_grad()
    def ground(self, frames: list[np.ndarray], sentences: list[str] | None, amp: bool = False,
               features: torch.Tensor | None = None, codes: torch.Tensor | None = None) -> np.ndarray:
        """Boxes (N, 4: x, y, w, h in frame pixels) of the sentences in RGB frames of any size, in one forward
        pass (``amp``: bf16 autocast; ``features`` and ``codes`` as in ``responses``), read from the response
        upsampled to the input size as in training."""
        s = self.hparams.input_size
        f = self.frame_features(frames, amp) if features is None else features
        with self._autocast(amp):
            tokens = None if codes is not None else self.tokens(sentences)
            logits = self.respond(f, tokens, None, codes).float()
        up = torch.sigmoid(self.upsampled(logits, (s, s)))[:, 0]
        boxes = []
        for r, frame in zip(up.cpu(), frames):
            x, y, w, h = box_from_response(r)
            sx, sy, px, py = self.placement(frame)
            fh, fw = frame_size(frame)
            x1, x2 = np.clip([(x - px) / sx, (x + w - px) / sx], 0, fw)  # the padding is outside the frame
            y1, y2 = np.clip([(y - py) / sy, (y + h - py) / sy], 0, fh)
            x1, y1 = min(x1, fw - 1), min(y1, fh - 1)
            boxes.append([x1, y1, max(x2 - x1, 1.0), max(y2 - y1, 1.0)])
        return np.asarray(boxes, dtype=np.float64)

    @torch.no_grad()
    def segment(self, clip: torch.Tensor, sentences: list[str], sources: list[str] | None = None,
                flow: torch.Tensor | None = None) -> torch.Tensor:
        """Probabilities (B, S, S) of the sentences in the middle frames of uint8 (B, 3, T, S, S) clips: the
        response upsampled as in training. Li et al.'s network as the image baseline of actor-and-action
        segmentation (Gavrilyuk et al., CVPR 2018, Table 1); ``flow`` is not read."""
        images = batch_images({"clip": clip.to(self.mean.device)})
        logits = self.respond(self.features(images), self.tokens(sentences))
        return torch.sigmoid(self.upsampled(logits, tuple(images.shape[-2:])).float())[:, 0]

    def full_size(self, probs: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Each probability map resized to its frame's (H, W) (``zoo.actor_action.model.resize_maps``)."""
        from zoo.actor_action.model import resize_maps

        return resize_maps(probs, sizes)

    def tracker(self, **kwargs: Any):  # noqa: ANN201
        """Model I: this network grounding the sentence in every frame (``zoo.lang_tracker.LingualTracker``)."""
        from zoo.lang_tracker.tracker import LingualTracker

        return LingualTracker(self, **kwargs)


def bilinear_kernel(size: int) -> torch.Tensor:
    """(1, 1, size, size) bilinear interpolation weights: a transposed convolution of stride size / 2 with
    them upsamples as bilinear resizing does (FCN's initialisation)."""
    centre = (size - 1) / 2
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - centre).abs() / (size / 2)
    return torch.outer(ramp, ramp)[None, None]


class WordAttention(nn.Module):
    """Attention over the words conditioned on the target (Model III): a_t = softmax_t(w . tanh(W_h h_t + W_v v)),
    the sentence vector sum_t a_t h_t; padding gets no weight.

    Choice: the additive (Bahdanau) form and its size; the paper gives the idea, not the layer."""

    def __init__(self, hidden: int, channels: int, dim: int = 512) -> None:
        super().__init__()
        self.text = nn.Linear(hidden, dim)
        self.target = nn.Linear(channels, dim, bias=False)
        self.score = nn.Linear(dim, 1, bias=False)

    def weights(self, states: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, hidden) states, (B, C) target, (B, T) word mask -> (B, T) attention weights."""
        e = self.score(torch.tanh(self.text(states) + self.target(target)[:, None])).squeeze(-1)
        return torch.softmax(e.float().masked_fill(~mask, float("-inf")), dim=1).to(states.dtype)

    def forward(self, states: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (self.weights(states, target, mask)[..., None] * states).sum(1)


def batch_images(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """uint8 (B, 3, S, S) frames of a batch: its ``image``, or the middle frame of each of its ``clip`` (B, 3, T, S,
    S), the annotated frame of a referring-segmentation sample."""
    if "image" in batch:
        return batch["image"]
    clip = batch["clip"]
    return clip[:, :, clip.shape[2] // 2]


def box_masks(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 4: x1, y1, x2, y2) boxes -> (B, 1, H, W) float masks, 1 on pixels whose centre is inside."""
    h, w = size
    ys = torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5
    xs = torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5
    b = boxes[:, :, None, None]
    inside_x = (xs[None, None] >= b[:, 0]) & (xs[None, None] < b[:, 2])
    inside_y = (ys[None, :, None] >= b[:, 1]) & (ys[None, :, None] < b[:, 3])
    return (inside_x & inside_y)[:, None].to(boxes.dtype)


WEIGHT_INITS = ("caffe", "torch")
LOSS_REDUCTIONS = ("batch", "mean")
LOSS_RESOLUTIONS = ("map", "input")
DECONV_INITS = ("zero", "bilinear")
UPSAMPLES = ("bilinear", "deconv")
FAITHFUL = dict(backbone="vgg16", input_size=512, embed_dim=1000, hidden=1000, max_tokens=MAX_TOKENS)
TINY = dict(backbone="tiny", pretrained_backbone=False, input_size=128, width=32, embed_dim=32, hidden=64,
            attention_dim=64, filter_activation="tanh", optimizer="adam", lr=3e-3, weight_decay=0.0,
            bias_lr_factor=1.0, normalize=True, response_affine=True, loss_resolution="input", loss_reduction="mean",
            skip_padding=False, weight_init="torch", deconv_init="bilinear")


@register_model
def lingual_vgg16(**kwargs: Any) -> LingualSpecification:
    """The lingual specification network as released: VGG16 at 512 x 512, embedding and LSTM of 1000 units over 20
    left-padded tokens, fc8 unnormalised; ``pretrained_backbone=True`` starts from ImageNet weights as the paper (the
    default builds random weights)."""
    return LingualSpecification(**{**FAITHFUL, **kwargs})


@register_model
def lingual_tiny(**kwargs: Any) -> LingualSpecification:
    """The CPU size: a small stride-8 CNN at 128 x 128 trained with the rest, LSTM of 64 units, tanh filters on
    L2-normalised features with a learned scale and bias, the loss on the upsampled response (``TINY``)."""
    return LingualSpecification(**{**TINY, **kwargs})
