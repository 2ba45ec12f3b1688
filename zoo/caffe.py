"""The authors' released Caffe weights as zoo checkpoints: ``zoo convert caffe --arch ARCH --caffemodel FILE``.

Three releases: SINT's ``SINT_similarity.caffemodel`` (``sint_vgg16``, net ``protos/SINT_deploy.prototxt``), and the
language tracker's ``VGG16.v2.caffemodel`` (``visual_vgg16``, net ``track_model/track_model_test.py``,
``demo/demo_track_*.prototxt``) and ``lang_high_res_seg/_iter_25000.caffemodel`` (``lingual_vgg16``, net
``lang_seg_model/lang_seg_model.py``, ``demo/lang_seg_model.prototxt``).

A ``.caffemodel`` is a protobuf ``NetParameter``; it is read here from the wire format, without Caffe or protobuf.
Field numbers as in Caffe's ``src/caffe/proto/caffe.proto``: the layers are ``layer`` (100, ``LayerParameter``:
name 1, type 2, blobs 7) or, in files written before 2015, ``layers`` (2, ``V1LayerParameter``: name 4, type 5 as an
enum, blobs 6; a V0 layer nested in field 1: name 1, type 2, blobs 50). A ``BlobProto`` holds ``data`` (5, packed
float) or ``double_data`` (8) and its ``shape`` (7, ``BlobShape``: dim 1, packed int64) or the legacy ``num``,
``channels``, ``height``, ``width`` (1-4). A layer named twice keeps its last blobs, as Caffe's
``Net::CopyTrainedLayersFrom`` copies them.

Conversion: each parameter of our network comes from the layer the released prototxt names (every one is checked,
shape included: a missing layer or a wrong shape is a one-line error naming the layer); layers the network does not
use (fc7, fc8 of an ImageNet VGG16, loss layers) are listed in the sidecar and otherwise ignored. Caffe feeds BGR
pixels in 0-255 less a mean pixel: conv1_1's input channels are reversed so the network reads RGB, and the
checkpoint's ``preprocessing="caffe"`` subtracts the mean (``zoo.nn.preprocessing``). The output is an ordinary zoo
checkpoint (``zoo.load(checkpoint_path=...)``, sha256 sidecar) with ``<out>.yaml`` beside it naming the source URL,
the source file's sha256, the architecture and its arguments.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import CheckpointError

VGG16_CONVS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2",
               "conv4_3", "conv5_1", "conv5_2", "conv5_3")
# each convolution's position in torchvision's vgg16().features (ReLUs and max pools between them)
VGG16_FEATURE_INDEX = dict(zip(VGG16_CONVS, (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)))

# V1LayerParameter.LayerType values of the layers that carry weights (the rest are named by number)
V1_TYPES = {4: "Convolution", 14: "InnerProduct", 39: "Deconvolution"}


class _Malformed(ValueError):
    """A protobuf wire-format error at a byte offset (made a CheckpointError naming the file)."""

    def __init__(self, what: str, pos: int | None = None) -> None:
        super().__init__(what if pos is None else f"{what} at byte {pos}")


# ---------------------------------------------------------------------------------------------------------------
# the protobuf wire format


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    start = pos
    while True:
        if pos >= end:
            raise _Malformed("a varint runs past the end of its message", start)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Malformed("a varint longer than 10 bytes", start)


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` of the message in ``buf[start:end]``: a varint's value, the offset of a
    fixed 32- or 64-bit value, or ``(start, end)`` of a length-delimited one."""
    pos = start
    while pos < end:
        key_at = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("field number 0", key_at)
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1:
            value, pos = pos, pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            value, pos = (pos, pos + n), pos + n
        elif wire == 5:
            value, pos = pos, pos + 4
        else:
            raise _Malformed(f"wire type {wire} (field {number})", key_at)
        if pos > end:
            raise _Malformed(f"field {number} runs past the end of its message", key_at)
        yield number, wire, value


def _text(buf: bytes, span: tuple[int, int]) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8", errors="replace")


def _packed(buf: bytes, wire: int, value: Any, dtype: str) -> np.ndarray:
    """Repeated float / double values: packed (wire type 2) or one per field (5 / 1)."""
    size = np.dtype(dtype).itemsize
    if wire == 2:
        start, end = value
        if (end - start) % size:
            raise _Malformed(f"packed {np.dtype(dtype).name} data of {end - start} bytes", start)
        return np.frombuffer(buf, dtype=dtype, count=(end - start) // size, offset=start)
    if wire != {4: 5, 8: 1}[size]:
        raise _Malformed(f"{np.dtype(dtype).name} data of wire type {wire}")
    return np.frombuffer(buf, dtype=dtype, count=1, offset=value)


def _dims(buf: bytes, wire: int, value: Any) -> list[int]:
    """BlobShape.dim: packed varints or one per field."""
    if wire == 0:
        return [value]
    if wire != 2:
        raise _Malformed(f"a blob dimension of wire type {wire}")
    dims, pos = [], value[0]
    while pos < value[1]:
        d, pos = _varint(buf, pos, value[1])
        dims.append(d)
    return dims


def _blob(buf: bytes, span: tuple[int, int]) -> np.ndarray:
    """A BlobProto's values (float32), shaped."""
    shape: list[int] | None = None
    legacy: dict[int, int] = {}
    chunks: list[np.ndarray] = []
    for number, wire, value in _fields(buf, *span):
        if number == 7 and wire == 2:
            shape = [d for n, w, v in _fields(buf, *value) if n == 1 for d in _dims(buf, w, v)]
        elif number in (1, 2, 3, 4) and wire == 0:
            legacy[number] = value
        elif number == 5:
            chunks.append(_packed(buf, wire, value, "<f4"))
        elif number == 8:
            chunks.append(_packed(buf, wire, value, "<f8").astype(np.float32))
    data = chunks[0] if len(chunks) == 1 else np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if shape is None:
        shape = [legacy.get(n, 0) for n in (1, 2, 3, 4)] if legacy else [data.size]
    if int(np.prod(shape)) != data.size:
        raise ValueError(f"holds {data.size} values for its shape {tuple(shape)}")
    return data.reshape(shape)


@dataclass
class CaffeLayer:
    """One layer of a ``.caffemodel``: its name, type and blobs (float32 arrays of the stored shapes)."""

    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)


def _layer(buf: bytes, span: tuple[int, int], v1: bool) -> CaffeLayer:
    name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
    layer = CaffeLayer("", "")
    spans = []
    for number, wire, value in _fields(buf, *span):
        if number == name_field and wire == 2:
            layer.name = _text(buf, value)
        elif number == type_field:
            layer.type = V1_TYPES.get(value, f"V1 type {value}") if v1 and wire == 0 else (
                _text(buf, value) if wire == 2 else str(value))
        elif number == blobs_field and wire == 2:
            spans.append(value)
        elif v1 and number == 1 and wire == 2:  # a V0LayerParameter inside
            for n, w, v in _fields(buf, *value):
                if n == 1 and w == 2 and not layer.name:
                    layer.name = _text(buf, v)
                elif n == 2 and w == 2 and not layer.type:
                    layer.type = _text(buf, v)
                elif n == 50 and w == 2:
                    spans.append(v)
    for i, blob_span in enumerate(spans):
        try:
            layer.blobs.append(_blob(buf, blob_span))
        except _Malformed:
            raise
        except ValueError as e:
            raise ValueError(f"layer {layer.name!r} blob {i} {e}") from None
    return layer


@dataclass
class CaffeModel:
    """The layers of a ``.caffemodel`` file by name, the field that held them (``layer`` or the V1 ``layers``), and
    the file's sha256 and size."""

    path: Path
    layers: dict[str, CaffeLayer]
    fields: tuple[str, ...]
    sha256: str
    size: int
    used: set[str] = field(default_factory=set)

    def blob(self, layer: str, index: int, shape: Sequence[int], what: str, arch: str) -> torch.Tensor:
        """Blob ``index`` of ``layer`` as a float32 tensor of ``shape``. The stored shape may carry leading ones
        (the legacy 4-D num, channels, height, width of InnerProduct blobs: 1 x 1 x out x in); anything else that
        differs is a one-line CheckpointError naming the layer."""
        if layer not in self.layers:
            raise CheckpointError(f"{self.path}: no layer {layer!r}, which {arch} needs ({_some(self.layers)})")
        blobs = self.layers[layer].blobs
        if index >= len(blobs):
            raise CheckpointError(f"{self.path}: layer {layer!r} has {len(blobs)} blob(s), {arch} needs its {what} "
                                  f"(blob {index})")
        array = blobs[index]
        if _strip_ones(array.shape) != _strip_ones(shape):
            raise CheckpointError(f"{self.path}: layer {layer!r}: {what} of shape {tuple(array.shape)}, {arch} needs "
                                  f"{tuple(shape)}")
        self.used.add(layer)
        return torch.from_numpy(np.array(array, dtype=np.float32).reshape(tuple(shape)))


def _strip_ones(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _some(layers: dict[str, CaffeLayer]) -> str:
    names = [n for n, layer in layers.items() if layer.blobs]
    if not names:
        return "the file holds no layer with weights"
    more = f", ... ({len(names)} in all)" if len(names) > 8 else ""
    return f"layers with weights: {', '.join(names[:8])}{more}"


def read_caffemodel(path: str | os.PathLike) -> CaffeModel:
    """The layers of a ``.caffemodel`` (a binary protobuf ``NetParameter``), read without Caffe; anything that is
    not one (text, an HDF5 snapshot, random or truncated bytes, a file without layers) is a one-line
    CheckpointError naming the file."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the .caffemodel ({e.strerror or e})") from None
    if buf.startswith(b"\x89HDF"):
        raise CheckpointError(f"{path}: an HDF5 Caffe snapshot, not a binary .caffemodel (protobuf); convert it with "
                              "Caffe (net.save) first")
    layers: dict[str, CaffeLayer] = {}
    found: list[str] = []
    try:
        for number, wire, value in _fields(buf, 0, len(buf)):
            if number in (100, 2) and wire == 2:
                layer = _layer(buf, value, v1=number == 2)
                layers[layer.name] = layer
                kind = "layer" if number == 100 else "layers (V1)"
                if kind not in found:
                    found.append(kind)
    except _Malformed as e:
        hint = "; a text .prototxt? pass the binary .caffemodel" if buf[:200].isascii() else ""
        raise CheckpointError(f"{path}: not a Caffe .caffemodel, the protobuf is malformed ({e}){hint}") from None
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    if not layers:
        raise CheckpointError(f"{path}: not a Caffe .caffemodel, no layers in it (empty, or another protobuf)")
    return CaffeModel(path, layers, tuple(found), hashlib.sha256(buf).hexdigest(), len(buf))


# ---------------------------------------------------------------------------------------------------------------
# the three releases


def _conv(net: CaffeModel, state: dict[str, torch.Tensor], layer: str, key: str, arch: str,
          bgr: bool = False) -> dict[str, torch.Tensor]:
    """A Convolution / InnerProduct layer's weights and bias -> ``key.weight``, ``key.bias``; ``bgr``: its input
    channels reversed (Caffe's BGR input -> RGB)."""
    weight = net.blob(layer, 0, state[f"{key}.weight"].shape, "weights", arch)
    if bgr:
        weight = weight.flip(1)
    return {f"{key}.weight": weight, f"{key}.bias": net.blob(layer, 1, state[f"{key}.bias"].shape, "bias", arch)}


def _vgg(net: CaffeModel, state: dict[str, torch.Tensor], arch: str, convs: Sequence[str],
         key: Callable[[int], str]) -> dict[str, torch.Tensor]:
    """VGG16's convolutions ``convs``, each to ``key(position in torchvision's vgg16().features)``; conv1_1 reads
    RGB."""
    weights: dict[str, torch.Tensor] = {}
    for layer in convs:
        weights.update(_conv(net, state, layer, key(VGG16_FEATURE_INDEX[layer]), arch, bgr=layer == "conv1_1"))
    return weights


def sint_weights(net: CaffeModel, model: torch.nn.Module, arch: str, **_: Any) -> dict[str, torch.Tensor]:
    """``SINT_deploy.prototxt``: conv1_1 .. conv5_3 (pool3 and pool4 removed: stride 4) and fc6 (25,088 -> 4,096, the
    RoI-pooled conv5_3) -> the stride-4 trunk (``zoo.nn.vgg.StrideFourVGG16``)."""
    state = model.state_dict()

    def key(i: int) -> str:
        return f"trunk.block123.{i}" if i < 16 else f"trunk.block4.{i - 17}" if i < 23 else f"trunk.block5.{i - 24}"

    return {**_vgg(net, state, arch, VGG16_CONVS, key), **_conv(net, state, "fc6", "trunk.fc6.0", arch)}


def visual_weights(net: CaffeModel, model: torch.nn.Module, arch: str, **_: Any) -> dict[str, torch.Tensor]:
    """``track_model_test.py``: VGG16's conv1_1 .. conv4_3 (pool4 and beyond unused) -> the visual trunk; the
    template is the filter, so there is nothing else to read."""
    state = model.state_dict()

    def key(i: int) -> str:
        return f"trunk.block3.{i}" if i < 17 else f"trunk.block4.{i - 17}"

    return _vgg(net, state, arch, VGG16_CONVS[:10], key)


def _ifog_to_ifgo(t: torch.Tensor) -> torch.Tensor:
    """Caffe's LSTM gate blocks (LSTMUnit: input, forget, output, cell input g) -> torch's (i, f, g, o)."""
    i, f, o, g = t.chunk(4, 0)
    return torch.cat([i, f, g, o])


def lingual_weights(net: CaffeModel, model: torch.nn.Module, arch: str, vocab_words: list[str] | None = None,
                    **_: Any) -> dict[str, torch.Tensor]:
    """``lang_seg_model.py`` (high resolution): VGG16 conv1_1 .. conv5_3 and fcn_fc6 .. fcn_fc8 (7 x 7 and 1 x 1
    convolutions) -> the trunk; embed (vocabulary x 1000 and a bias, added to every row) -> the word embedding,
    its rows in our vocabulary's order; lstm (W_xc, b_c, W_hc; gates i, f, o, g) -> torch's LSTM (i, f, g, o; b_c as
    bias_ih, bias_hh zero); dyn_l -> the dynamic filter's FC; upscores (a 64 x 64 deconvolution, stride 32) -> the
    learned upsampling."""
    state = model.state_dict()
    weights = _vgg(net, state, arch, VGG16_CONVS, lambda i: f"trunk.{i}")
    for layer, index in (("fcn_fc6", 31), ("fcn_fc7", 33), ("fcn_fc8", 35)):
        weights.update(_conv(net, state, layer, f"trunk.{index}", arch))
    vocab_words = vocab_words or []
    embed_dim = state["text.embed.weight"].shape[1]
    rows = net.blob("embed", 0, (len(vocab_words), embed_dim), "weights", arch)
    if len(net.layers["embed"].blobs) > 1:  # Caffe's Embed adds a bias (bias_term defaults to true)
        rows = rows + net.blob("embed", 1, (embed_dim,), "bias", arch)
    official = {w: i for i, w in enumerate(vocab_words)}  # the file's line order, the Caffe rows'
    weights["text.embed.weight"] = rows[[official[w] for w in model.vocab.words]]
    hidden = state["text.lstm.weight_hh_l0"].shape[1]
    lstm = [net.blob("lstm", i, shape, what, arch) for i, (shape, what) in enumerate((
        ((4 * hidden, embed_dim), "W_xc"), ((4 * hidden,), "b_c"), ((4 * hidden, hidden), "W_hc")))]
    weights.update({"text.lstm.weight_ih_l0": _ifog_to_ifgo(lstm[0]), "text.lstm.bias_ih_l0": _ifog_to_ifgo(lstm[1]),
                    "text.lstm.weight_hh_l0": _ifog_to_ifgo(lstm[2]),
                    "text.lstm.bias_hh_l0": torch.zeros(4 * hidden)})
    weights.update(_conv(net, state, "dyn_l", "filter.fc", arch))
    weights["upsampler.weight"] = net.blob("upscores", 0, state["upsampler.weight"].shape, "weights", arch)
    return weights


@dataclass(frozen=True)
class CaffeRelease:
    """One released ``.caffemodel`` and how it becomes a zoo network.

    ``args``: the constructor arguments of the network the prototxt describes; ``weights``: the parameters read from
    the file; ``keep``: parameters the Caffe network does not have, left at the constructor's values (documented
    there)."""

    arch: str
    entry: str
    url: str
    prototxt: str
    args: dict[str, Any]
    weights: Callable[..., dict[str, torch.Tensor]]
    keep: tuple[str, ...] = ()
    needs_vocab: bool = False


LANG_TRACKER = "http://isis-data.science.uva.nl/zhenyang/cvpr17-langtracker/code/pretrain-models/"
RELEASES: dict[str, CaffeRelease] = {r.arch: r for r in (
    CaffeRelease("sint_vgg16", "sint_vgg16.authors", "http://isis-data.science.uva.nl/rantao/SINT_similarity.caffemodel",
                 "taotaoorange/SINT protos/SINT_deploy.prototxt",
                 {"preprocessing": "caffe", "fc6_relu": False, "roi_mode": "pool", "input_size": 512}, sint_weights),
    CaffeRelease("visual_vgg16", "visual_vgg16.authors", LANG_TRACKER + "VGG16.v2.caffemodel",
                 "QUVA-Lab/lang-tracker track_model/track_model_test.py", {"preprocessing": "caffe"}, visual_weights,
                 keep=("scale", "bias")),
    CaffeRelease("lingual_vgg16", "lingual_vgg16.authors",
                 LANG_TRACKER + "snapshots/lang_high_res_seg/_iter_25000.caffemodel",
                 "QUVA-Lab/lang-tracker lang_seg_model/lang_seg_model.py",
                 {"preprocessing": "caffe", "upsample": "deconv", "normalize": False, "embed_dim": 1000,
                  "hidden": 1000, "filter_activation": "sigmoid", "attention": False, "response_affine": False,
                  "skip_padding": True, "input_size": 512, "keep_aspect": True},
                 lingual_weights, needs_vocab=True),
)}


def convert_caffe(arch: str, caffemodel: str | os.PathLike, out: str | os.PathLike,
                  vocab: str | os.PathLike | None = None) -> Path:
    """Convert the authors' ``caffemodel`` for ``arch`` (``RELEASES``) to the zoo checkpoint ``out`` (returned),
    written atomically with ``<out>.sha256`` and ``<out>.yaml`` (source URL and sha256, architecture, arguments,
    the layers read and those ignored). ``vocab``: the vocabulary file the lingual network's embedding rows follow
    (``vocabulary_referit.txt``, 8,803 words)."""
    import yaml

    import zoo
    from zoo.hub import atomic_write_bytes, read_sha256_sidecar, sha256sum
    from zoo.nn.text import Vocabulary

    if arch not in RELEASES:
        raise CheckpointError(f"no Caffe release for {arch!r}; the zoo converts {', '.join(RELEASES)}")
    release = RELEASES[arch]
    args = dict(release.args)
    vocab_words = None
    if release.needs_vocab:
        if vocab is None:
            raise CheckpointError(f"{arch}: the Caffe file holds no vocabulary; pass the vocabulary file its embedding "
                                  "rows follow (--vocab vocabulary_referit.txt, 8,803 words)")
        vocab_words = Vocabulary.from_file(vocab).words
        args["vocab"] = vocab_words
    net = read_caffemodel(caffemodel)
    stored = net.layers["embed"].blobs[:1] if vocab_words is not None and "embed" in net.layers else []
    if stored and stored[0].ndim == 2 and stored[0].shape[0] != len(vocab_words):
        raise CheckpointError(f"{net.path}: layer 'embed' has {stored[0].shape[0]} rows, the vocabulary {vocab} has "
                              f"{len(vocab_words)} words: pass the vocabulary the network was trained with")
    model = zoo.create_model(arch, pretrained_backbone=False, **args).eval()
    weights = release.weights(net, model, arch, vocab_words=vocab_words)
    params = dict(model.named_parameters())
    buffers = {k for k, _ in model.named_buffers()}
    unread = [k for k in params if k not in weights and k not in release.keep]
    if unread:
        raise CheckpointError(f"the {arch} conversion reads nothing for {', '.join(unread[:5])}: the network changed "
                              f"since the converter was written (zoo/caffe.py)")
    state = model.state_dict()
    with torch.no_grad():
        for key, value in weights.items():
            if key not in state or key in buffers:
                raise CheckpointError(f"the {arch} conversion writes {key}, which the network lacks (zoo/caffe.py)")
            state[key].copy_(value.reshape(state[key].shape))
    out = Path(out)
    model.save(out)
    ignored = [n for n, layer in net.layers.items() if layer.blobs and n not in net.used]
    sidecar = {
        "arch": arch,
        "args": {k: v for k, v in args.items() if k != "vocab"},
        "source": {"url": release.url, "file": Path(caffemodel).name, "sha256": net.sha256, "size": net.size,
                   "fields": list(net.fields), "prototxt": release.prototxt},
        "sha256": read_sha256_sidecar(out),
        "converter": f"zoo.caffe.convert_caffe (zoo {zoo.__version__})",
        "preprocessing": {"input": "RGB pixels in 0-255 less the mean pixel (Caffe's BGR input: conv1_1's input "
                                   "channels reversed)",
                          "mean_rgb": [round(float(m) * 255, 6) for m in model.mean.flatten()]},
        "layers_read": sorted(net.used, key=list(net.layers).index),
        "layers_ignored": ignored,
        "parameters_kept": [k for k in release.keep if k in params],
    }
    if vocab_words is not None:
        sidecar["vocab"] = {"file": Path(vocab).name, "sha256": sha256sum(vocab), "words": len(vocab_words)}
    atomic_write_bytes(out.with_name(out.name + ".yaml"), yaml.safe_dump(sidecar, sort_keys=False).encode())
    return out


def main(argv: Sequence[str]) -> int:
    """``zoo convert caffe --arch ARCH --caffemodel FILE [--out F.pt] [--vocab FILE]``."""
    import zoo
    from zoo.commands import ArgumentParser
    from zoo.hub import zoo_home

    urls = "; ".join(f"{r.arch}: {r.url}" for r in RELEASES.values())
    p = ArgumentParser(prog="zoo convert caffe", description="Convert the authors' released Caffe weights "
                       f"(.caffemodel, read without Caffe) to a zoo checkpoint. The files: {urls}")
    p.add_argument("--arch", required=True, choices=sorted(RELEASES), help="the network the file holds")
    p.add_argument("--caffemodel", required=True, help="the downloaded .caffemodel")
    p.add_argument("--out", default=None, help="the checkpoint to write; without it, the zoo cache file of the "
                   "arch's index entry, which zoo.load('ARCH.authors') reads")
    p.add_argument("--vocab", default=None, help="lingual_vgg16 only: the vocabulary file its embedding follows "
                   "(vocabulary_referit.txt, 8,803 words)")
    a = p.parse_args(argv)
    release = RELEASES[a.arch]
    if a.vocab is not None and not release.needs_vocab:
        p.error(f"--vocab applies to {', '.join(r.arch for r in RELEASES.values() if r.needs_vocab)}, not {a.arch}")
    out = a.out or zoo_home() / "checkpoints" / zoo.get_entry(release.entry).file_name
    path = convert_caffe(a.arch, a.caffemodel, out, a.vocab)
    print(path)
    print(f"load it with zoo.load(checkpoint_path={str(path)!r})"
          + ("" if a.out else f" or zoo.load({release.entry!r})"))
    return 0
