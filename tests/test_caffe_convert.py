"""``zoo convert caffe``: the authors' .caffemodel files (SINT, the language tracker's visual and lingual networks)
read without Caffe and converted to zoo checkpoints.

The .caffemodel files here are written by an independent encoder of Caffe's protobuf (``caffe.proto``: NetParameter
``layer`` 100 / V1 ``layers`` 2, LayerParameter name 1 type 2 blobs 7, V1LayerParameter name 4 type 5 blobs 6,
BlobProto shape 7 / num channels height width 1-4 / data 5) from random weights with the official layer names and
shapes; each converted network is checked parameter by parameter and in a forward pass against the Caffe network
computed directly from the raw blobs (BGR input less the mean pixel, Caffe's LSTM with its ``cont`` resets).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
import yaml

import zoo
from zoo.benchmark.commands.otb import entry_sha256
from zoo.caffe import convert_caffe, read_caffemodel
from zoo.cli import main
from zoo.errors import CheckpointError, UnknownModelError

VGG = [("conv1_1", 3, 64), ("conv1_2", 64, 64), ("conv2_1", 64, 128), ("conv2_2", 128, 128), ("conv3_1", 128, 256),
       ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv4_1", 256, 512), ("conv4_2", 512, 512),
       ("conv4_3", 512, 512), ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512)]
# RGB: run_SINT_OTB.py's ilsvrc_2012_mean.npy mean pixel (BGR 104.007, 116.669, 122.679) and the lang tracker's
# channel_mean
SINT_MEAN_RGB = np.array([122.6789143406786, 116.66876761696767, 104.0069879317889])
LANG_MEAN_RGB = np.array([123.68, 116.779, 103.939])
SINT_URL = "http://isis-data.science.uva.nl/rantao/SINT_similarity.caffemodel"
LANG_URLS = {
    "visual_vgg16": "http://isis-data.science.uva.nl/zhenyang/cvpr17-langtracker/code/pretrain-models/VGG16.v2.caffemodel",
    "lingual_vgg16": "http://isis-data.science.uva.nl/zhenyang/cvpr17-langtracker/code/pretrain-models/snapshots/"
                     "lang_high_res_seg/_iter_25000.caffemodel",
}


# --- an encoder of Caffe's protobuf, independent of zoo.caffe's reader --------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


# a message is a list of parts, bytes or arrays (written as raw little-endian float32 without copying them whole)
Parts = list


def _size(parts: Parts) -> int:
    return sum(p.nbytes if isinstance(p, np.ndarray) else len(p) for p in parts)


def _field(number: int, payload: Parts | bytes | int | str) -> Parts:
    if isinstance(payload, int):
        return [_varint(number << 3) + _varint(payload)]
    if isinstance(payload, (str, bytes)):
        payload = [payload.encode() if isinstance(payload, str) else payload]
    parts = payload
    return [_varint(number << 3 | 2) + _varint(_size(parts)), *parts]


def _blob(array: np.ndarray, legacy: bool) -> Parts:
    a = np.ascontiguousarray(array, dtype="<f4")
    if legacy:  # the 4-D num, channels, height, width of files written before BlobShape (InnerProduct: 1 1 out in)
        head = [p for i, d in enumerate((1,) * (4 - a.ndim) + a.shape, 1) for p in _field(i, d)]
    else:
        head = _field(7, _field(1, b"".join(_varint(d) for d in a.shape)))
    return head + _field(5, [a])


V1_TYPE = {"Convolution": 4, "InnerProduct": 14, "Deconvolution": 39, "ReLU": 18, "Pooling": 17, "Python": 0,
           "Embed": 0, "LSTM": 0}


def _layer(name: str, kind: str, blobs: list[np.ndarray], v1: bool) -> Parts:
    if v1:  # V1LayerParameter: bottom 2, top 3, name 4, type 5 (enum), blobs 6, convolution_param 10
        head = _field(2, "bottom") + _field(3, name) + _field(4, name) + _field(5, V1_TYPE[kind])
        return head + [p for b in blobs for p in _field(6, _blob(b, True))] + _field(10, _field(1, 64))
    # LayerParameter: name 1, type 2, bottom 3, top 4, param 6, blobs 7, convolution_param 106
    head = _field(1, name) + _field(2, kind) + _field(3, "bottom") + _field(4, name) + _field(6, _field(3, 0))
    return head + [p for b in blobs for p in _field(7, _blob(b, False))] + _field(106, _field(1, 64))


def write_caffemodel(path: Path, layers: list[tuple[str, str, list[np.ndarray]]], v1: bool = False) -> Path:
    """A binary NetParameter (name 1, input 3, then ``layer`` 100 or V1 ``layers`` 2)."""
    parts = _field(1, "net") + _field(3, "data")
    for n, k, b in layers:
        parts += _field(2 if v1 else 100, _layer(n, k, b, v1))
    with open(path, "wb") as f:
        for p in parts:
            f.write(memoryview(p).cast("B") if isinstance(p, np.ndarray) else p)
    return path


def _random(rng: np.random.Generator, *shape: int, fan_in: int | None = None) -> np.ndarray:
    """Normal weights (He's scale for ``fan_in``); beyond 4M values a random block of 2^20 repeats (a whole random
    fc6 of 103M values costs seconds to draw)."""
    scale = np.sqrt(2.0 / fan_in) if fan_in else 0.1
    count = int(np.prod(shape))
    if count <= 1 << 22:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
    block = rng.standard_normal(1 << 20, dtype=np.float32) * np.float32(scale)
    flat = np.empty(count, np.float32)
    whole = count // block.size * block.size
    flat[:whole].reshape(-1, block.size)[:] = block
    flat[whole:] = block[: count - whole]
    return flat.reshape(shape)


def vgg_layers(rng: np.random.Generator, names: list[str]) -> dict[str, list[np.ndarray]]:
    return {n: [_random(rng, c_out, c_in, 3, 3, fan_in=9 * c_in), _random(rng, c_out)]
            for n, c_in, c_out in VGG if n in names}


# --- the Caffe networks, computed from the raw blobs ---------------------------------------------------------------


def caffe_input(images: torch.Tensor, mean_rgb: np.ndarray) -> torch.Tensor:
    """What the official code feeds Caffe: BGR pixels in 0-255 less the mean pixel (transformer / channel_mean)."""
    x = images.double() - torch.from_numpy(mean_rgb).view(1, 3, 1, 1)
    return x.flip(1)


def caffe_vgg(x: torch.Tensor, blobs: dict[str, list[np.ndarray]], upto: str, pools: tuple[str, ...]
              ) -> dict[str, torch.Tensor]:
    """ReLU outputs of conv1_1 .. ``upto`` (3 x 3, pad 1), 2 x 2 max pooling after the layers in ``pools``."""
    out = {}
    for name, _, _ in VGG:
        w, b = (torch.from_numpy(a).double() for a in blobs[name])
        x = F.relu(F.conv2d(x, w, b, padding=1))
        out[name] = x
        if name in pools:
            x = F.max_pool2d(x, 2, 2)
            out["pool" + name[4]] = x
        if name == upto:
            return out
    return out


def _close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(a.double(), b.double(), rtol=1e-4, atol=1e-4 * float(b.abs().max()), msg=what)


def _one_line_error(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(CheckpointError, match=match) as e:
        fn(*args, **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


def _sidecar(out: Path) -> dict:
    return yaml.safe_load(out.with_name(out.name + ".yaml").read_text())


# --- SINT ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("v1", [False, True], ids=["layer", "layers"])
def test_sint_real_shapes_every_parameter_and_forward(tmp_path, v1):
    """SINT_deploy.prototxt at its real shapes (conv1_1 .. conv5_3, fc6 25,088 -> 4,096) in the current ``layer``
    field or the V1 ``layers`` (enum types, legacy 4-D blob shapes): every parameter lands where the prototxt says,
    and the descriptor equals the Caffe network's."""
    rng = np.random.default_rng(0)
    blobs = vgg_layers(rng, [n for n, _, _ in VGG])
    blobs["fc6"] = [_random(rng, 4096, 25088, fan_in=25088), _random(rng, 4096)]
    layers = [(n, "Convolution", blobs[n]) for n, _, _ in VGG] + [("fc6", "InnerProduct", blobs["fc6"])]
    layers.insert(0, ("data", "Python", []))  # layers without blobs are passed over
    source = write_caffemodel(tmp_path / "SINT_similarity.caffemodel", layers, v1=v1)
    out = convert_caffe("sint_vgg16", source, tmp_path / "sint.pt")

    model = zoo.load(checkpoint_path=out)
    assert type(model).__name__ == "SINT" and model.hparams.preprocessing == "caffe"
    assert model.hparams.fc6_relu is False
    convs = [m for m in model.trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13
    for (name, _, _), conv in zip(VGG, convs):
        w, b = blobs[name]
        expected = w[:, ::-1] if name == "conv1_1" else w  # conv1_1 reads RGB
        assert torch.equal(conv.weight, torch.from_numpy(expected.copy())), name
        assert torch.equal(conv.bias, torch.from_numpy(b)), name
    assert torch.equal(model.trunk.fc6[0].weight, torch.from_numpy(blobs["fc6"][0]))
    assert torch.equal(model.trunk.fc6[0].bias, torch.from_numpy(blobs["fc6"][1]))

    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    rois = torch.tensor([[0, 4.0, 6.0, 40.0, 50.0], [0, 20.0, 10.0, 60.0, 33.0]])
    feats = caffe_vgg(caffe_input(images, SINT_MEAN_RGB), blobs, "conv5_3", pools=("conv1_2", "conv2_2"))
    pool4 = torchvision.ops.roi_pool(feats["conv4_3"], rois.double(), 7, 0.25).flatten(1)
    pool5 = torchvision.ops.roi_pool(feats["conv5_3"], rois.double(), 7, 0.25).flatten(1)
    fc6 = F.linear(pool5, *(torch.from_numpy(a).double() for a in blobs["fc6"]))  # linear: no ReLU in the prototxt
    expected = F.normalize(torch.cat([F.normalize(t, dim=1) for t in (pool4, pool5, fc6)], 1), dim=1)
    with torch.no_grad():
        got = model(model.normalize(images), rois)
    _close(got, expected, "SINT descriptor")

    side = _sidecar(out)
    assert side["source"]["url"] == SINT_URL and side["arch"] == "sint_vgg16"
    assert side["source"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert side["args"]["preprocessing"] == "caffe" and side["source"]["fields"] == ["layers (V1)" if v1 else "layer"]
    assert side["layers_read"] == [n for n, _, _ in VGG] + ["fc6"] and side["layers_ignored"] == []
    assert side["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


# --- the visual network ----------------------------------------------------------------------------------------------


def test_visual_network_both_fields_every_parameter_and_features(tmp_path):
    """VGG16.v2.caffemodel (``layer``) or the original VGG_ILSVRC_16_layers.caffemodel that track_model's
    test_config.py also names (V1 ``layers``, enum types, legacy 4-D blob shapes): conv1_1 .. conv4_3 read, conv5
    and fc8 left; the features equal Caffe's pool3 and relu4_3, each L2-normalised over channels (LRN 513 /
    1025). Both fields give the same checkpoint."""
    rng = np.random.default_rng(1)
    blobs = vgg_layers(rng, [n for n, _, _ in VGG])
    layers = [(n, "Convolution", blobs[n]) for n, _, _ in VGG] + [("fc8", "InnerProduct", [_random(rng, 10, 7),
                                                                                        _random(rng, 10)])]
    source = write_caffemodel(tmp_path / "VGG16.v2.caffemodel", layers)
    out = convert_caffe("visual_vgg16", source, tmp_path / "visual.pt")
    model = zoo.load(checkpoint_path=out)
    convs = [m for m in model.trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 10
    for (name, _, _), conv in zip(VGG, convs):
        w, b = blobs[name]
        assert torch.equal(conv.weight, torch.from_numpy((w[:, ::-1] if name == "conv1_1" else w).copy())), name
        assert torch.equal(conv.bias, torch.from_numpy(b)), name
    # not in the file: the official Power layer's fixed calibration (track_model_train.py), the constructor's
    assert float(model.scale) == pytest.approx(0.01196) and float(model.bias) == -1.0

    images = torch.randint(0, 256, (2, 3, 48, 48), dtype=torch.uint8)
    feats = caffe_vgg(caffe_input(images, LANG_MEAN_RGB), blobs, "conv4_3", pools=("conv1_2", "conv2_2", "conv3_3"))
    expected = torch.cat([F.normalize(feats["pool3"], dim=1), F.normalize(feats["conv4_3"], dim=1)], 1)
    with torch.no_grad():
        _close(model.features(images), expected, "visual features")
    side = _sidecar(out)
    assert side["source"]["fields"] == ["layer"] and side["source"]["url"] == LANG_URLS["visual_vgg16"]
    assert side["layers_ignored"] == ["conv5_1", "conv5_2", "conv5_3", "fc8"]

    old = write_caffemodel(tmp_path / "VGG_ILSVRC_16_layers.caffemodel", layers, v1=True)
    out_v1 = convert_caffe("visual_vgg16", old, tmp_path / "visual_v1.pt")
    assert _sidecar(out_v1)["source"]["fields"] == ["layers (V1)"]
    state, state_v1 = (torch.load(p, weights_only=True)["state_dict"] for p in (out, out_v1))
    assert list(state) == list(state_v1) and all(torch.equal(state[k], state_v1[k]) for k in state)


def _visual_file(tmp_path: Path, drop: str = "", reshape: str = "", v1: bool = False
                 ) -> tuple[Path, dict[str, list[np.ndarray]]]:
    """conv1_1 .. conv4_3 (less ``drop``; ``reshape``'s weights with 32 input channels)."""
    rng = np.random.default_rng(2)
    blobs = vgg_layers(rng, [n for n, _, _ in VGG[:10]])
    if reshape:
        blobs[reshape][0] = blobs[reshape][0][:, :32]
    layers = [(n, "Convolution", b) for n, b in blobs.items() if n != drop]
    return write_caffemodel(tmp_path / "bad.caffemodel", layers, v1=v1), blobs


def test_missing_layer_wrong_shape_and_garbage_are_one_line_errors(tmp_path):
    out = tmp_path / "x.pt"
    src, _ = _visual_file(tmp_path, drop="conv3_2")
    _one_line_error(rf"^{re.escape(str(src))}: no layer 'conv3_2', which visual_vgg16 needs", convert_caffe,
                    "visual_vgg16", src, out)
    src, _ = _visual_file(tmp_path, reshape="conv2_1", v1=True)
    _one_line_error(r"layer 'conv2_1': weights of shape \(128, 32, 3, 3\), visual_vgg16 needs \(128, 64, 3, 3\)",
                    convert_caffe, "visual_vgg16", src, out)
    good = _visual_file(tmp_path)[0].read_bytes()
    for name, data in (("random", np.random.default_rng(3).bytes(5000)), ("truncated", good[: len(good) // 2]),
                       ("prototxt", b'name: "SINT"\nlayer {\n  name: "conv1_1"\n}\n'), ("empty", b""),
                       ("hdf5", b"\x89HDF\r\n\x1a\n" + bytes(100))):
        bad = tmp_path / f"{name}.caffemodel"
        bad.write_bytes(data)
        message = _one_line_error(rf"^{re.escape(str(bad))}: ", convert_caffe, "visual_vgg16", bad, out)
        assert "Caffe" in message or "caffemodel" in message, message
    assert "a text .prototxt?" in _one_line_error("prototxt", read_caffemodel, tmp_path / "prototxt.caffemodel")
    vocab = tmp_path / "vocabulary.txt"
    vocab.write_text("<pad>\n<go>\n<eos>\n<unk>\nman\n")
    embed = write_caffemodel(tmp_path / "embed.caffemodel", [("embed", "Embed", [np.zeros((8, 4), np.float32)])])
    _one_line_error(r"layer 'embed' has 8 rows, the vocabulary .*vocabulary.txt has 5 words", convert_caffe,
                    "lingual_vgg16", embed, out, vocab=vocab)
    assert not out.exists()
    # a blob whose data does not fill its shape names the layer
    bad = tmp_path / "short.caffemodel"
    blob = _field(7, _field(1, _varint(4) + _varint(3))) + _field(5, np.zeros(5, "<f4").tobytes())
    bad.write_bytes(b"".join(_field(100, _field(1, "conv1_1") + _field(7, blob))))
    _one_line_error(r"layer 'conv1_1' blob 0 holds 5 values for its shape \(4, 3\)", read_caffemodel, bad)


def test_cli_converts_into_the_cache_and_the_index_entry_loads(tmp_path, capsys):
    """``zoo info`` names the source URL and the command; before conversion zoo.load says what to do; after
    ``zoo convert caffe`` (no --out: the cache file of the entry) zoo.load("visual_vgg16.authors") is the network."""
    assert main(["info", "visual_vgg16.authors"]) == 0
    info = capsys.readouterr().out
    assert LANG_URLS["visual_vgg16"] in info and "zoo convert caffe --arch visual_vgg16 --caffemodel" in info
    message = _one_line_error(r"^visual_vgg16.authors is converted from the authors' file", zoo.load,
                              "visual_vgg16.authors")
    assert LANG_URLS["visual_vgg16"] in message and "zoo convert caffe --arch visual_vgg16" in message

    source, blobs = _visual_file(tmp_path)
    assert main(["convert", "caffe", "--arch", "visual_vgg16", "--caffemodel", str(source)]) == 0
    path = Path(capsys.readouterr().out.splitlines()[0])
    assert path == zoo.hub.zoo_home() / "checkpoints" / "visual_vgg16.authors.pt" and path.is_file()
    model = zoo.load("visual_vgg16.authors")
    assert model.hparams.preprocessing == "caffe" and not model.training
    assert torch.equal(model.trunk.block4[4].bias, torch.from_numpy(blobs["conv4_3"][1]))
    # a benchmark of the named entry records the converted file's sha256; the bare architecture does not silently
    # become the authors' weights (pretrained=False builds random ones, as before the entry existed)
    assert entry_sha256(zoo.get_entry("visual_vgg16.authors")) == zoo.hub.sha256sum(path)
    with pytest.raises(UnknownModelError, match=r"'visual_vgg16' has no checkpoint ready to download; "
                       r"visual_vgg16.authors is the authors' file"):
        zoo.get_entry("visual_vgg16")
    assert main(["convert", "caffe", "--arch", "visual_vgg16", "--caffemodel", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zoo: error: ") and "nothing" in err and "\n" not in err
    assert main(["convert", "caffe", "--arch", "visual_vgg16", "--caffemodel", str(source), "--vocab", "v"]) == 2
    assert "--vocab applies to lingual_vgg16" in capsys.readouterr().err


# --- the lingual network ----------------------------------------------------------------------------------------------

SPLIT = re.compile(r"(\W+)")
VOCAB = ["<pad>", "<go>", "<eos>", "<unk>", "man", "in", "the", "red", "shirt", "left", "on", "a", "car", "dog"]


def official_tokens(sentence: str, vocab: list[str], T: int = 20) -> list[int]:
    """util/text_processing.py preprocess_sentence: split on non-word runs, lower-case, drop a final '.', unknown
    words -> <unk>, the first T, left-padded with <pad>."""
    index = {w: i for i, w in enumerate(vocab)}
    words = [w.lower() for w in SPLIT.split(sentence.strip()) if len(w.strip()) > 0]
    if words[-1] == ".":
        words = words[:-1]
    ids = [index.get(w, index["<unk>"]) for w in words][:T]
    return [index["<pad>"]] * (T - len(ids)) + ids


def official_cont(ids: list[int]) -> list[int]:
    """util/text_processing.py create_cont: 0 up to and including the first word, then 1."""
    cont, begun = [], False
    for word in ids:
        cont.append(1 if begun else 0)
        begun = begun or word != 0
    return cont


def caffe_lstm(x: torch.Tensor, cont: list[int], w_xc: torch.Tensor, b_c: torch.Tensor, w_hc: torch.Tensor
               ) -> torch.Tensor:
    """Caffe's LSTM layer: h_conted = cont_t h_{t-1}; gates W_xc x + b_c + W_hc h_conted split i, f, o, g
    (LSTMUnit); f is 0 where cont_t is 0; c = f c_{t-1} + i g; h = o tanh(c). Returns h_T."""
    hidden = w_hc.shape[1]
    h, c = torch.zeros(hidden, dtype=x.dtype), torch.zeros(hidden, dtype=x.dtype)
    for x_t, k in zip(x, cont):
        gates = w_xc @ x_t + b_c + w_hc @ (k * h)
        i, f, o, g = gates.split(hidden)
        i, f, o, g = torch.sigmoid(i), torch.sigmoid(f) * k, torch.sigmoid(o), torch.tanh(g)
        c = f * c + i * g
        h = o * torch.tanh(c)
    return h


def official_spatial(height: int, width: int) -> torch.Tensor:
    """util/processing_tools.py generate_spatial_batch, (8, H, W)."""
    out = np.zeros((height, width, 8))
    for h in range(height):
        for w in range(width):
            xmin, xmax = w / width * 2 - 1, (w + 1) / width * 2 - 1
            ymin, ymax = h / height * 2 - 1, (h + 1) / height * 2 - 1
            out[h, w] = [xmin, ymin, xmax, ymax, (xmin + xmax) / 2, (ymin + ymax) / 2, 1 / width, 1 / height]
    return torch.from_numpy(out).permute(2, 0, 1)


def test_lingual_network_real_shapes_every_parameter_and_forward(tmp_path):
    """lang_seg_model.py's high-resolution network at its real shapes (VGG16, fcn_fc6 .. fcn_fc8, embed and LSTM of
    1000, dyn_l 1000 -> 1008, upscores 64 x 64 / 32): every parameter (LSTM gates i, f, o, g -> i, f, g, o; the
    embedding's bias in its rows), and the response and its upsampling equal the Caffe network's on a padded and
    a full-length sentence (the LSTM's ``cont`` resets over the padding)."""
    rng = np.random.default_rng(4)
    blobs = vgg_layers(rng, [n for n, _, _ in VGG])
    blobs["fcn_fc6"] = [_random(rng, 4096, 512, 7, 7, fan_in=512 * 49), _random(rng, 4096)]
    blobs["fcn_fc7"] = [_random(rng, 4096, 4096, 1, 1, fan_in=4096), _random(rng, 4096)]
    blobs["fcn_fc8"] = [_random(rng, 1000, 4096, 1, 1, fan_in=4096), _random(rng, 1000)]
    blobs["embed"] = [_random(rng, len(VOCAB), 1000), _random(rng, 1000)]
    blobs["lstm"] = [_random(rng, 4000, 1000), _random(rng, 4000), _random(rng, 4000, 1000)]
    blobs["dyn_l"] = [_random(rng, 1008, 1000, fan_in=1000), _random(rng, 1008)]
    blobs["upscores"] = [_random(rng, 1, 1, 64, 64)]
    kinds = {"embed": "Embed", "lstm": "LSTM", "dyn_l": "InnerProduct", "upscores": "Deconvolution"}
    layers = [(n, kinds.get(n, "Convolution"), b) for n, b in blobs.items()]
    source = write_caffemodel(tmp_path / "_iter_25000.caffemodel", layers)
    vocab = tmp_path / "vocabulary_referit.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    _one_line_error(r"lingual_vgg16: the Caffe file holds no vocabulary; pass .*--vocab", convert_caffe,
                    "lingual_vgg16", source, tmp_path / "l.pt")
    out = convert_caffe("lingual_vgg16", source, tmp_path / "lingual.pt", vocab=vocab)
    model = zoo.load(checkpoint_path=out)
    hp = model.hparams
    assert (hp.preprocessing, hp.upsample, hp.normalize, hp.embed_dim, hp.hidden) == ("caffe", "deconv", False, 1000,
                                                                                        1000)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).double()

    convs = [m for m in model.trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    names = [n for n, _, _ in VGG] + ["fcn_fc6", "fcn_fc7", "fcn_fc8"]
    assert len(convs) == len(names)
    for name, conv in zip(names, convs):
        w, b = blobs[name]
        assert torch.equal(conv.weight, torch.from_numpy((w[:, ::-1] if name == "conv1_1" else w).copy())), name
        assert torch.equal(conv.bias, torch.from_numpy(b)), name
    order = [VOCAB.index(w) for w in model.vocab.words]
    _close(model.text.embed.weight, t(blobs["embed"][0][order] + blobs["embed"][1]), "embed")
    w_xc, b_c, w_hc = (t(a) for a in blobs["lstm"])

    def ifgo(a: torch.Tensor) -> torch.Tensor:
        i, f, o, g = a.chunk(4)
        return torch.cat([i, f, g, o])

    lstm = model.text.lstm
    for got, expected in ((lstm.weight_ih_l0, ifgo(w_xc)), (lstm.bias_ih_l0, ifgo(b_c)),
                          (lstm.weight_hh_l0, ifgo(w_hc)), (lstm.bias_hh_l0, torch.zeros(4000))):
        assert torch.equal(got.double(), expected)
    assert torch.equal(model.filter.fc.weight.double(), t(blobs["dyn_l"][0]))
    assert torch.equal(model.filter.fc.bias.double(), t(blobs["dyn_l"][1]))
    assert torch.equal(model.upsampler.weight.double(), t(blobs["upscores"][0]))

    sentences = ["The man in the red shirt.", " ".join(["dog on the car"] * 6)]
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    feats = caffe_vgg(caffe_input(images, LANG_MEAN_RGB), blobs, "conv5_3",
                      pools=("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"))
    x = F.relu(F.conv2d(feats["pool5"], *(t(a) for a in blobs["fcn_fc6"]), padding=3))
    x = F.relu(F.conv2d(x, *(t(a) for a in blobs["fcn_fc7"])))
    fc8 = F.conv2d(x, *(t(a) for a in blobs["fcn_fc8"]))
    feat_all = torch.cat([fc8, official_spatial(*fc8.shape[-2:]).expand(2, -1, -1, -1)], 1)
    scores = []
    for i, sentence in enumerate(sentences):
        ids = official_tokens(sentence, VOCAB)
        h_t = caffe_lstm(t(blobs["embed"][0][ids] + blobs["embed"][1]), official_cont(ids), w_xc, b_c, w_hc)
        kernel = torch.sigmoid(F.linear(h_t, *(t(a) for a in blobs["dyn_l"])))
        scores.append(F.conv2d(feat_all[i : i + 1], kernel.view(1, -1, 1, 1)))
    scores = torch.cat(scores)
    upscores = F.conv_transpose2d(scores, t(blobs["upscores"][0]), stride=32, padding=16)
    assert sum(official_cont(official_tokens(sentences[0], VOCAB))) == 5  # 14 padding tokens
    with torch.no_grad():
        tokens = model.tokens(sentences)
        assert tokens.tolist() == [official_tokens(s, VOCAB) for s in sentences]
        logits = model(images, tokens)
        _close(logits, scores, "fcn_scores")
        _close(model.upsampled(logits, (64, 64)), upscores, "upscores")
    side = _sidecar(out)
    assert side["vocab"]["words"] == len(VOCAB) and side["source"]["url"] == LANG_URLS["lingual_vgg16"]
    assert side["layers_read"] == list(blobs) and side["layers_ignored"] == []


def test_index_entries_name_the_three_released_files():
    entries = {e.arch: e for e in zoo.checkpoint_entries().values() if e.convert}
    assert entries["sint_vgg16"].url == SINT_URL
    for arch, url in LANG_URLS.items():
        assert entries[arch].url == url
    for arch, e in entries.items():
        assert e.name == f"{arch}.authors" and e.sha256 is None and e.args["preprocessing"] == "caffe"
        assert e.convert.startswith(f"zoo convert caffe --arch {arch} --caffemodel {Path(e.url).name}")
    # the lingual network's command needs the official vocabulary: its entry says where to get it
    assert "text_objseg/master/exp-referit/data/vocabulary_referit.txt" in entries["lingual_vgg16"].provenance


def test_readme_convert_example_is_a_valid_entry(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parents[1] / "checkpoints" / "README.md").read_text()
    example = next(yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "convert:" in b)
    (tmp_path / f"{example['name']}.yaml").write_text(yaml.safe_dump(example))
    monkeypatch.setenv("ZOO_INDEX_PATH", str(tmp_path))
    entry = zoo.get_entry(example["name"])
    assert entry.convert == example["convert"] and entry.sha256 is None and entry.file_name == f"{entry.name}.pt"
    example.pop("convert")  # without it, sha256 and size are required again
    (tmp_path / f"{example['name']}.yaml").write_text(yaml.safe_dump(example))
    _one_line_error(r"lacks sha256, size", zoo.get_entry, example["name"])


def test_reader_takes_v0_layers_doubles_and_unpacked_values(tmp_path):
    """The oldest files: a V0LayerParameter inside V1's field 1 (name 1, blobs 50); blobs of double_data (8); a
    shape written as one dim field per value. The last layer of a name wins, as Caffe copies them."""
    w = np.arange(6, dtype="<f8").reshape(2, 3)
    doubles = _field(7, _field(1, _varint(2)) + _field(1, _varint(3))) + _field(8, w.tobytes())
    v0 = _field(1, _field(1, "conv1_1") + _field(2, "conv") + _field(50, doubles))
    floats = _field(7, _field(1, _varint(3))) + [_varint(5 << 3 | 5) + np.float32(x).tobytes() for x in (1, 2, 3)]
    data = _field(2, v0) + _field(100, _field(1, "fc6") + _field(7, _blob(np.zeros(2, np.float32), False)))
    data += _field(100, _field(1, "fc6") + _field(7, floats))
    path = tmp_path / "old.caffemodel"
    path.write_bytes(b"".join(data))
    net = read_caffemodel(path)
    assert list(net.layers) == ["conv1_1", "fc6"] and net.fields == ("layers (V1)", "layer")
    assert net.layers["conv1_1"].type == "conv" and np.array_equal(net.layers["conv1_1"].blobs[0], w)
    assert net.layers["conv1_1"].blobs[0].dtype == np.float32
    assert np.array_equal(net.layers["fc6"].blobs[0], [1.0, 2.0, 3.0])
