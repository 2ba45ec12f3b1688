"""Registry, checkpoint index, cache, hash checks and safe loading."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from zoo.errors import CheckpointError, DownloadError, UnknownModelError
from zoo.hub import sha256sum


def test_list_models():
    assert {"clip_tiny", "clip_resnet18"} <= set(zoo.list_models())
    assert zoo.list_models("clip_t*") == ["clip_tiny"]
    assert zoo.list_models(pretrained=True) == sorted(zoo.list_models(pretrained=True))


def test_unknown_model_suggests_names():
    with pytest.raises(UnknownModelError, match=r"unknown model 'clip_tiyn'; did you mean clip_tiny"):
        zoo.load("clip_tiyn", pretrained=False)
    with pytest.raises(UnknownModelError, match="no pretrained checkpoint"):
        zoo.load("clip_tiny")


def _publish(tmp_path: Path, model, tag="synth", args=None) -> tuple[Path, dict]:
    """Save a checkpoint, serve it from a file:// URL and write its index entry; returns (index dir, entry)."""
    weights = tmp_path / "served" / f"clip_tiny-{tag}.pt"
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict()}, weights)
    entry = {
        "name": f"clip_tiny.{tag}",
        "arch": "clip_tiny",
        "args": args or {},
        "url": weights.as_uri(),
        "sha256": sha256sum(weights),
        "size": weights.stat().st_size,
        "dataset": "synthetic UCF101",
        "metrics": {"top1": 0.5},
        "protocol": "clip accuracy, test list 1",
        "config": "configs/demo_clip_tiny.yaml",
        "license": "MIT",
        "provenance": "tests",
    }
    index = tmp_path / "index"
    index.mkdir(exist_ok=True)
    (index / f"clip_tiny.{tag}.yaml").write_text(yaml.safe_dump(entry))
    return index, entry


def test_save_index_load_round_trip(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = zoo.create_model("clip_tiny", width=8).eval()
    index, entry = _publish(tmp_path, model, args={"width": 8})
    monkeypatch.setenv("ZOO_INDEX_PATH", str(index))
    assert "clip_tiny.synth" in zoo.list_models(pretrained=True)
    loaded = zoo.load("clip_tiny.synth")
    assert not loaded.training
    clip = torch.randint(0, 256, (2, 8, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(clip), model(clip), rtol=0, atol=0)
    cached = Path(zoo.hub.zoo_home()) / "checkpoints" / "clip_tiny-synth.pt"
    assert cached.is_file() and sha256sum(cached) == entry["sha256"]
    # the only checkpoint of an architecture is its default; overrides reach the constructor
    assert zoo.load("clip_tiny", dropout=0.5).hparams.dropout == 0.5


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_checkpoint_is_refused(tmp_path, monkeypatch, damage):
    model = zoo.create_model("clip_tiny")
    index, entry = _publish(tmp_path, model)
    monkeypatch.setenv("ZOO_INDEX_PATH", str(index))
    served = Path(entry["url"][len("file://"):])
    data = bytearray(served.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) - 100]
    served.write_bytes(bytes(data))
    with pytest.raises(DownloadError, match="sha256"):
        zoo.load("clip_tiny.synth")
    # a damaged file already in the cache is refused before it is deserialised
    cached = tmp_path / "cache" / "clip_tiny-synth.pt"
    cached.parent.mkdir()
    cached.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"clip_tiny-synth.pt: sha256 mismatch"):
        zoo.load("clip_tiny.synth", cache_dir=cached.parent)
    # and a damaged local file gives one line, not a deep traceback
    if damage == "truncate":
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            zoo.load(checkpoint_path=cached)


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsCode()
    payload.marker = marker
    evil = tmp_path / "evil.ckpt"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": payload}, f)
    with pytest.raises(CheckpointError, match="would run code"):
        zoo.load(checkpoint_path=evil)
    torch.save({"state_dict": {}, "x": payload}, tmp_path / "evil2.ckpt")
    with pytest.raises(CheckpointError, match="would run code"):
        zoo.load("clip_tiny", checkpoint_path=tmp_path / "evil2.ckpt")
    assert not marker.exists()


def test_missing_file_offline_names_url_path_and_hash(tmp_path, monkeypatch):
    model = zoo.create_model("clip_tiny")
    index, entry = _publish(tmp_path, model)
    entry["url"] = "https://example.invalid/zoo/clip_tiny-synth.pt"
    (index / "clip_tiny.synth.yaml").write_text(yaml.safe_dump(entry))
    monkeypatch.setenv("ZOO_INDEX_PATH", str(index))
    expected = Path(zoo.hub.zoo_home()) / "checkpoints" / "clip_tiny-synth.pt"
    with pytest.raises(DownloadError) as e:
        zoo.load("clip_tiny.synth")
    message = str(e.value)
    assert entry["url"] in message and str(expected) in message and entry["sha256"] in message
    assert "\n" not in message
    # placing the file by hand makes the same call work offline
    expected.parent.mkdir(parents=True, exist_ok=True)
    expected.write_bytes(Path(index.parent / "served" / "clip_tiny-synth.pt").read_bytes())
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert isinstance(zoo.load("clip_tiny.synth"), zoo.ZooModule)


def test_bad_index_entry_names_the_file(tmp_path, monkeypatch):
    (tmp_path / "clip_tiny.bad.yaml").write_text("name: clip_tiny.bad\narch: clip_tiny\nurl: x\n")
    monkeypatch.setenv("ZOO_INDEX_PATH", str(tmp_path))
    message = r"clip_tiny.bad.yaml: checkpoint index entry 'clip_tiny.bad' lacks sha256"
    with pytest.raises(CheckpointError, match=message):
        zoo.list_models(pretrained=True)


def test_imagenet_backbone_offline_and_placed_by_hand(monkeypatch):
    import torchvision

    from zoo.nn.backbones import weights_path

    weights = torchvision.models.ResNet18_Weights.DEFAULT
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(DownloadError) as e:
        zoo.create_model("clip_resnet18")
    assert weights.url in str(e.value) and str(weights_path(weights)) in str(e.value)
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    weights_path(weights).parent.mkdir(parents=True)
    torch.save(reference.state_dict(), weights_path(weights))
    model = zoo.create_model("clip_resnet18", num_classes=5)
    torch.testing.assert_close(model.trunk.conv1.weight, reference.conv1.weight)


def test_real_network_failure_is_one_line(monkeypatch):
    """No network here (or a refused host): the download error still names what to place where."""
    from zoo.hub import download

    with pytest.raises(DownloadError, match="could not download http://127.0.0.1:9/x.pt .*place the file by hand"):
        download("http://127.0.0.1:9/x.pt", Path(zoo.hub.zoo_home()) / "x.pt", sha256="ab" * 32, timeout=5)
