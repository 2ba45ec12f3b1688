"""Registry, checkpoint index, cache, hash checks and safe loading."""

from __future__ import annotations

import ast
import inspect
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from zoo.errors import CheckpointError, DownloadError, UnknownModelError
from zoo.hub import sha256sum

ROOT = Path(__file__).resolve().parents[1]


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
    cached = Path(zoo.hub.zoo_home()) / "checkpoints" / f"clip_tiny.synth-{entry['sha256'][:8]}.pt"
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
    cached = tmp_path / "cache" / zoo.get_entry("clip_tiny.synth").file_name
    cached.parent.mkdir()
    cached.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"clip_tiny.synth-[0-9a-f]{8}.pt: sha256 mismatch"):
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
    expected = Path(zoo.hub.zoo_home()) / "checkpoints" / zoo.get_entry("clip_tiny.synth").file_name
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
        zoo.create_model("clip_resnet18", pretrained_backbone=True)
    assert weights.url in str(e.value) and str(weights_path(weights)) in str(e.value)
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    weights_path(weights).parent.mkdir(parents=True)
    torch.save(reference.state_dict(), weights_path(weights))
    model = zoo.create_model("clip_resnet18", num_classes=5, pretrained_backbone=True)
    torch.testing.assert_close(model.trunk.conv1.weight, reference.conv1.weight)


def test_real_network_failure_is_one_line(monkeypatch):
    """No network here (or a refused host): the download error still names what to place where."""
    from zoo.hub import download

    with pytest.raises(DownloadError, match="could not download http://127.0.0.1:9/x.pt .*place the file by hand"):
        download("http://127.0.0.1:9/x.pt", Path(zoo.hub.zoo_home()) / "x.pt", sha256="ab" * 32, timeout=5)


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_registry_is_a_leaf_and_builtins_register_from_any_import():
    tree = ast.parse((ROOT / "zoo" / "registry.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert {m for m in imported if m.startswith("zoo")} == {"zoo.errors"}, imported
    assert "import zoo.models" not in (ROOT / "zoo" / "loading.py").read_text()
    names = set(zoo.list_models())
    for first in ("zoo.sint.model", "datamodules.otb", "zoo.registry", "callbacks"):
        run = _run(f"import {first}\nimport zoo.registry as r\nprint(','.join(r.list_models()))")
        assert run.returncode == 0, run.stderr[-2000:]
        assert set(run.stdout.strip().split(",")) == names, first


def test_unknown_tag_is_an_error_whatever_pretrained(tmp_path, monkeypatch):
    with pytest.raises(UnknownModelError, match=r"unknown checkpoint 'sint_tiny.nosuchtag'; sint_tiny has none"):
        zoo.load("sint_tiny.nosuchtag", pretrained=False)
    index, _ = _publish(tmp_path, zoo.create_model("clip_tiny", width=8), args={"width": 8})
    monkeypatch.setenv("ZOO_INDEX_PATH", str(index))
    for call in (lambda: zoo.load("clip_tiny.nosuch", pretrained=False), lambda: zoo.create_model("clip_tiny.nosuch"),
                 lambda: zoo.load("clip_tiny.nosuch"), lambda: zoo.load("sint_tiny.x", pretrained=False)):
        with pytest.raises(UnknownModelError, match=r"clip_tiny.synth"):
            call()
    # a known tag with pretrained=False: that entry's architecture, random weights, nothing fetched
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert zoo.load("clip_tiny.synth", pretrained=False).hparams.width == 8
    assert zoo.create_model("clip_tiny.synth", width=4).hparams.width == 4
    assert not (Path(zoo.hub.zoo_home()) / "checkpoints").exists()


def test_pretrained_false_downloads_nothing(tmp_path, monkeypatch):
    from zoo.baseline import ClipClassifier
    from zoo.lang_tracker import LingualSpecification, VisualSpecification
    from zoo.sint import SINT

    torch_home = tmp_path / "torch"
    torch_home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    model = zoo.load("sint_vgg16", pretrained=False)
    assert not model.training and not model.hparams.pretrained_backbone
    assert zoo.create_model("clip_resnet18").training
    assert list(torch_home.rglob("*")) == [] and not Path(zoo.hub.zoo_home()).exists()
    for cls in (SINT, ClipClassifier, LingualSpecification, VisualSpecification):
        assert inspect.signature(cls).parameters["pretrained_backbone"].default is False, cls


def _resnet_weights_placed() -> Path:
    import torchvision

    from zoo.nn.backbones import weights_path

    path = weights_path(torchvision.models.ResNet18_Weights.DEFAULT)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_loading_a_checkpoint_never_fetches_backbone_weights(tmp_path, monkeypatch):
    """Saved hyperparameters say pretrained_backbone=True: rebuilding for the checkpoint's weights must not download."""
    placed = _resnet_weights_placed()
    model = zoo.create_model("clip_resnet18", num_classes=3, pretrained_backbone=True).eval()
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "resnet.ckpt")
    index, entry = _publish(tmp_path, model, tag="rn", args={"num_classes": 3, "pretrained_backbone": True})
    entry["arch"], entry["name"] = "clip_resnet18", "clip_resnet18.rn"
    (index / "clip_tiny.rn.yaml").unlink()
    (index / "clip_resnet18.rn.yaml").write_text(yaml.safe_dump(entry))
    monkeypatch.setenv("ZOO_INDEX_PATH", str(index))
    cached = Path(zoo.hub.zoo_home()) / "checkpoints" / zoo.get_entry("clip_resnet18.rn").file_name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(Path(entry["url"][len("file://"):]).read_bytes())
    placed.unlink()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    clip = torch.randint(0, 256, (1, 9, 3, 32, 32), dtype=torch.uint8)
    for loaded in (zoo.load(checkpoint_path=tmp_path / "resnet.ckpt"),
                   zoo.load("clip_resnet18", checkpoint_path=tmp_path / "resnet.ckpt", num_classes=3),
                   zoo.load("clip_resnet18.rn"), zoo.create_model("clip_resnet18.rn", pretrained=True)):
        with torch.no_grad():
            torch.testing.assert_close(loaded.eval()(clip), model(clip), rtol=0, atol=0)


def test_pretrained_without_checkpoint_lists_what_exists(tmp_path, monkeypatch):
    with pytest.raises(UnknownModelError,
                       match=r"no pretrained checkpoint.*named checkpoints: .*i3d_inception.kinetics400"):
        zoo.create_model("sint_tiny", pretrained=True)
    index, _ = _publish(tmp_path, zoo.create_model("clip_tiny"))
    monkeypatch.setenv("ZOO_INDEX_PATH", str(index))
    with pytest.raises(UnknownModelError, match=r"'sint_tiny' has no pretrained checkpoint.*clip_tiny.synth"):
        zoo.load("sint_tiny")


def test_create_model_pretrained_like_timm(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = zoo.create_model("clip_tiny", width=8).eval()
    index, _ = _publish(tmp_path, model, args={"width": 8})
    monkeypatch.setenv("ZOO_INDEX_PATH", str(index))
    for name in ("clip_tiny.synth", "clip_tiny"):
        trained = zoo.create_model(name, pretrained=True)
        assert trained.training
        for (key, a), b in zip(model.state_dict().items(), trained.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    assert zoo.create_model("clip_tiny", pretrained=False).training


def _entry_yaml(tmp_path: Path, **changes) -> Path:
    entry = {
        "name": "clip_tiny.bad", "arch": "clip_tiny", "url": "https://example.invalid/x.pt", "sha256": "ab" * 32,
        "size": 10, "dataset": "d", "metrics": {"top1": 0.5}, "protocol": "p", "license": "MIT", "provenance": "t",
    }
    entry.update(changes)
    path = tmp_path / "clip_tiny.bad.yaml"
    path.write_text(yaml.safe_dump(entry))
    return path


@pytest.mark.parametrize("key, value", [
    ("metrics", 0.5), ("metrics", {"top1": "high"}), ("sha256", int("1" * 64)), ("sha256", "abc"),
    ("sha256", "z" * 64), ("args", [1, 2]), ("size", "big"), ("size", 1.5), ("size", True), ("default", "maybe"),
    ("url", 3), ("config", ["a"]), ("name", 7),
])
def test_bad_index_values_name_the_file_and_key(tmp_path, monkeypatch, key, value):
    path = _entry_yaml(tmp_path, **{key: value})
    monkeypatch.setenv("ZOO_INDEX_PATH", str(tmp_path))
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: {key} must be ") as e:
        zoo.list_models(pretrained=True)
    assert "\n" not in str(e.value)
    _entry_yaml(tmp_path)
    assert zoo.get_entry("clip_tiny.bad").sha256 == "ab" * 32


def test_cache_names_are_unique_per_entry(tmp_path, monkeypatch):
    index = tmp_path / "index"
    index.mkdir()
    models = {}
    for tag, width in (("a", 4), ("b", 8)):
        models[tag] = zoo.create_model("clip_tiny", width=width).eval()
        served = tmp_path / "served" / tag / "last.ckpt"
        served.parent.mkdir(parents=True)
        torch.save({"state_dict": models[tag].state_dict()}, served)
        _, entry = _publish(tmp_path, models[tag], tag=tag, args={"width": width})
        entry.update(url=served.as_uri(), sha256=sha256sum(served), size=served.stat().st_size)
        (index / f"clip_tiny.{tag}.yaml").write_text(yaml.safe_dump(entry))
    monkeypatch.setenv("ZOO_INDEX_PATH", str(index))
    for tag in ("a", "b"):
        assert zoo.load(f"clip_tiny.{tag}").hparams.width == models[tag].hparams.width
    names = sorted(p.name for p in (Path(zoo.hub.zoo_home()) / "checkpoints").iterdir())
    sha = {t: zoo.get_entry(f"clip_tiny.{t}").sha256[:8] for t in ("a", "b")}
    assert names == [f"clip_tiny.a-{sha['a']}.ckpt", f"clip_tiny.b-{sha['b']}.ckpt"]


def test_checkpoints_readme_example_is_a_valid_entry(tmp_path, monkeypatch):
    from zoo.sint import SINT

    text = (ROOT / "checkpoints" / "README.md").read_text()
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    example["sha256"] = "0" * 64
    (tmp_path / f"{example['name']}.yaml").write_text(yaml.safe_dump(example))
    monkeypatch.setenv("ZOO_INDEX_PATH", str(tmp_path))
    entry = zoo.get_entry(example["arch"])
    assert entry.arch in zoo.list_models() and (ROOT / entry.config).is_file()
    assert set(entry.args) <= set(inspect.signature(SINT).parameters)
    assert entry.file_name.startswith(f"{entry.name}-00000000.")
