"""The lingual specification network as released (QUVA-Lab/lang-tracker ``lang_seg_model.py``,
``demo/lang_seg_model.prototxt``, ``util/text_processing.py``): sizes, sentence encoding, no L2 normalisation of fc8,
no scale or bias on the response, Caffe's fillers and Caffe's sigmoid cross-entropy reduction."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from zoo.lang_tracker.lingual import FAITHFUL, LingualSpecification
from zoo.nn.text import SentenceEncoder

WORDS = ["the", "red", "circle", "on", "left", "square"]


def small(**kwargs) -> LingualSpecification:  # noqa: ANN003
    """The released network's defaults on the small trunk (the text side at its released 1000 units)."""
    torch.manual_seed(0)
    return LingualSpecification(vocab=WORDS, backbone="tiny", input_size=64, **kwargs)


def test_released_sizes_and_defaults():
    defaults = {k: p.default for k, p in inspect.signature(LingualSpecification.__init__).parameters.items()}
    assert (defaults["embed_dim"], defaults["hidden"], defaults["max_tokens"]) == (1000, 1000, 20)
    assert FAITHFUL["embed_dim"] == FAITHFUL["hidden"] == 1000 and FAITHFUL["max_tokens"] == 20
    assert not defaults["normalize"] and not defaults["response_affine"] and defaults["skip_padding"]
    assert (defaults["loss_reduction"], defaults["loss_resolution"], defaults["deconv_init"],
            defaults["weight_init"]) == ("batch", "map", "zero", "caffe")
    net = small()
    assert net.text.embed.embedding_dim == 1000 and net.text.lstm.hidden_size == 1000
    assert net.filter.fc.in_features == 1000 and net.filter.fc.out_features == 32 + 8  # fc8 channels + spatial
    assert net.scale is None and net.bias is None
    assert not any(n in ("scale", "bias") for n, _ in net.named_parameters())


def test_sentences_are_twenty_tokens_left_padded():
    net = small()
    tokens = net.tokens(["The red circle.", " ".join(["red"] * 30)])
    assert tokens.shape == (2, 20)
    index = net.vocab.index
    assert tokens[0, :17].eq(0).all() and tokens[0, 17:].tolist() == [index["the"], index["red"], index["circle"]]
    assert tokens[1].eq(index["red"]).all()  # the first 20 tokens of a long sentence


def test_lstm_starts_at_the_first_word_as_caffe_cont_resets_it():
    """Caffe's LSTM with the official cont (0 up to and including the first word) reads the words from a zero state:
    h_T is the LSTM's over the words alone, whatever the padding, and padding positions carry no state."""
    torch.manual_seed(0)
    enc = SentenceEncoder(10, embed_dim=6, hidden=5, skip_padding=True)
    words = torch.tensor([[3, 4, 5], [7, 2, 9]])
    reference, _ = enc.lstm(enc.embed(words))
    for pad in (0, 2, 17):
        states, h_t = enc(torch.cat([torch.zeros(2, pad, dtype=torch.long), words], 1))
        torch.testing.assert_close(h_t, reference[:, -1])
        torch.testing.assert_close(states[:, pad:], reference)
        assert states[:, :pad].eq(0).all()
    ragged = torch.tensor([[0, 0, 3, 4], [0, 6, 8, 1]])
    states, h_t = enc(ragged)
    torch.testing.assert_close(h_t[0], enc.lstm(enc.embed(ragged[:1, 2:]))[0][0, -1])
    torch.testing.assert_close(h_t[1], enc.lstm(enc.embed(ragged[1:, 1:]))[0][0, -1])
    over_padding = SentenceEncoder(10, embed_dim=6, hidden=5, skip_padding=False)
    over_padding.load_state_dict(enc.state_dict())
    assert not torch.allclose(over_padding(ragged)[1][0], h_t[0])  # the other rule differs


def test_fc8_enters_the_filter_unnormalised_and_the_response_is_the_dynamic_convolution_alone():
    net = small().eval()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        f = net.features(images)
        norms = f.norm(dim=1)
        assert not torch.allclose(norms, torch.ones_like(norms), atol=1e-3)
        normalised = small(normalize=True).eval().features(images).norm(dim=1)
        torch.testing.assert_close(normalised, torch.ones_like(normalised))
        tokens = net.tokens(["the red circle on the left", "square"])
        response = net.respond(f, tokens)
        _, h_t = net.text(tokens)
        kernels = torch.sigmoid(h_t @ net.filter.fc.weight.T + net.filter.fc.bias)  # dyn_l + dyn_sig
        spatial = torch.zeros(8, 8, 8)
        for y in range(8):
            for x in range(8):  # util/processing_tools.generate_spatial_batch
                x0, x1, y0, y1 = x / 8 * 2 - 1, (x + 1) / 8 * 2 - 1, y / 8 * 2 - 1, (y + 1) / 8 * 2 - 1
                spatial[:, y, x] = torch.tensor([x0, y0, x1, y1, (x0 + x1) / 2, (y0 + y1) / 2, 1 / 8, 1 / 8])
        expected = torch.einsum("bc,bchw->bhw", kernels, torch.cat([f, spatial.expand(2, -1, -1, -1)], 1))
        torch.testing.assert_close(response[:, 0], expected, rtol=1e-4, atol=1e-4)


def test_caffe_fillers():
    net = small()
    assert net.text.embed.weight.abs().max() <= 0.08 and net.text.embed.weight[1:].std() > 0.03
    for name, param in net.text.lstm.named_parameters():
        assert param.eq(0).all() if name.startswith("bias") else param.abs().max() <= 0.08
    bound = (3 / 1000) ** 0.5  # Caffe's xavier: uniform in +-sqrt(3 / fan_in)
    assert net.filter.fc.weight.abs().max() <= bound and net.filter.fc.weight.abs().max() > 0.9 * bound
    assert net.filter.fc.bias.eq(0).all()
    deconv = small(upsample="deconv")
    assert deconv.upsampler.weight.eq(0).all()  # no weight_filler: Caffe's constant 0
    assert deconv.upsampler.weight.shape == (1, 1, 16, 16)  # 2s x 2s for a stride-s trunk (64 x 64 at stride 32)
    assert small(upsample="deconv", deconv_init="bilinear").upsampler.weight.sum() > 0


def caffe_sigmoid_cross_entropy(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SigmoidCrossEntropyLossLayer::Forward_cpu: -sum(x (z - [x >= 0]) - log(1 + exp(x - 2 x [x >= 0]))) / num."""
    pos = (x >= 0).to(x.dtype)
    return -(x * (z - pos) - torch.log1p(torch.exp(x - 2 * x * pos))).sum() / x.shape[0]


def test_loss_is_caffes_sum_over_pixels_divided_by_the_batch():
    net = small()
    torch.manual_seed(1)
    logits = torch.randn(3, 1, 8, 8) * 3
    masks = torch.zeros(3, 1, 64, 64)
    masks[0, 0, 10:30, 5:20] = 1
    masks[1, 0, 0:3, 60:64] = 1  # one 8 x 8 cell touched by a corner
    # first stage: at map resolution against label_coarse = downscale_local_mean(mask, stride) > 0
    coarse = torch.zeros(3, 1, 8, 8)
    for b in range(3):
        for y in range(8):
            for x in range(8):
                coarse[b, 0, y, x] = float(masks[b, 0, 8 * y : 8 * y + 8, 8 * x : 8 * x + 8].mean() > 0)
    assert coarse[1].sum() == 1
    loss = net.response_loss(logits, masks)
    torch.testing.assert_close(loss, caffe_sigmoid_cross_entropy(logits, coarse))
    assert loss.item() > 10 * F.binary_cross_entropy_with_logits(logits, coarse).item()  # a sum, not a mean
    mean = small(loss_reduction="mean").response_loss(logits, masks)
    torch.testing.assert_close(mean, caffe_sigmoid_cross_entropy(logits, coarse) / 64)
    upsampled = F.interpolate(logits, size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(small(loss_resolution="input").response_loss(logits, masks),
                               caffe_sigmoid_cross_entropy(upsampled, masks))
    # second stage: the deconvolution's output at input resolution against the full mask
    deconv = small(upsample="deconv", deconv_init="bilinear")
    with torch.no_grad():
        up = deconv.upsampler(logits)
    assert up.shape == (3, 1, 64, 64)
    torch.testing.assert_close(deconv.response_loss(logits, masks), caffe_sigmoid_cross_entropy(up, masks))


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_training_step_reduces_the_batch_as_caffe():
    net = small()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    boxes = torch.tensor([[8.0, 8.0, 40.0, 30.0], [0.0, 32.0, 64.0, 64.0]])
    batch = {"image": images, "box": boxes, "sentence": ["the red circle", "square on the left"]}
    loss = net.training_step(batch, 0)
    with torch.no_grad():
        logits = net.respond(net.features(images), net.tokens(batch["sentence"]))
    target = torch.zeros(2, 1, 8, 8)  # cells the boxes touch (8-pixel cells of the stride-8 trunk)
    target[0, 0, 1:4, 1:5] = 1
    target[1, 0, 4:8, :] = 1
    torch.testing.assert_close(loss.detach(), caffe_sigmoid_cross_entropy(logits, target))


def test_checkpoints_from_before_the_released_defaults_rebuild_as_they_were():
    old = {k: v for k, v in small(response_affine=True, skip_padding=False).hparams.items()
           if k not in ("response_affine", "skip_padding", "weight_init", "loss_reduction", "loss_resolution",
                        "deconv_init")}
    args = LingualSpecification.rebuild_kwargs(old)
    assert args["response_affine"] and not args["skip_padding"]
    assert LingualSpecification.rebuild_kwargs(dict(small().hparams))["response_affine"] is False


def test_bad_settings_name_themselves():
    for name, value in (("loss_reduction", "sum"), ("loss_resolution", "coarse"), ("deconv_init", "xavier"),
                        ("weight_init", "kaiming")):
        with pytest.raises(ValueError, match=f"{name} must be"):
            small(**{name: value})
