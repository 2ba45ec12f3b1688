"""Checkpoint files: sha256 sidecars (HashedCheckpoint, LanguageTracking.save), one-line errors for files that are
not checkpoints, hyperparameters a class does not take, file modes and downloads."""

from __future__ import annotations

import os
import pickle
import random
import stat
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from torch.utils.data import DataLoader

import zoo
from callbacks import HashedCheckpoint
from zoo.errors import CheckpointError, DownloadError
from zoo.hub import atomic_write_bytes, download, sha256sum, sidecar_path


def _clips(n: int = 8) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [{"video": torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=g),
             "label": torch.tensor(i % 7)} for i in range(n)]


def _fit(root: Path, **checkpoint_args) -> tuple[pl.Trainer, HashedCheckpoint]:
    pl.seed_everything(0)
    callback = HashedCheckpoint(dirpath=root, **checkpoint_args)
    trainer = pl.Trainer(max_steps=6, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[callback], default_root_dir=root)
    trainer.fit(zoo.create_model("clip_tiny", width=4), DataLoader(_clips(), batch_size=2))
    return trainer, callback


def _sidecars_match(root: Path) -> list[str]:
    """The checkpoint names of ``root``, each checked against its sidecar (format and hash)."""
    names = sorted(p.name for p in root.iterdir() if p.suffix == ".ckpt")
    assert sorted(p.name for p in root.glob("*.sha256")) == [f"{n}.sha256" for n in names]
    for name in names:
        assert sidecar_path(root / name).read_text() == f"{sha256sum(root / name)}  {name}\n"
    return names


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_hashed_checkpoint_writes_and_removes_sidecars(tmp_path):
    root = tmp_path / "ckpt"
    _, callback = _fit(root, save_last=True, save_top_k=1, every_n_train_steps=2)
    names = _sidecars_match(root)
    assert names == ["epoch=1-step=6.ckpt", "last.ckpt"]  # steps 2 and 4 were saved, then removed with their sidecar
    mode = stat.S_IMODE(sidecar_path(root / "last.ckpt").stat().st_mode)
    assert mode == 0o666 & ~_umask()
    last = Path(callback.last_model_path)
    assert isinstance(zoo.load(checkpoint_path=last), zoo.ZooModule)
    _flip_middle_byte(last)
    with pytest.raises(CheckpointError, match=r"last.ckpt: sha256 mismatch") as e:
        zoo.load(checkpoint_path=last)
    assert str(sidecar_path(last)) in str(e.value) and "\n" not in str(e.value)


def test_hashed_checkpoint_linked_last(tmp_path):
    root = tmp_path / "ckpt"
    _fit(root, save_last="link", save_top_k=1, every_n_train_steps=2)
    last = root / "last.ckpt"
    assert last.is_symlink()
    assert _sidecars_match(root) == ["epoch=1-step=6.ckpt", "last.ckpt"]  # the link follows the newest file
    assert isinstance(zoo.load(checkpoint_path=last), zoo.ZooModule)
    _flip_middle_byte(last.resolve())
    with pytest.raises(CheckpointError, match=r"last.ckpt: sha256 mismatch"):
        zoo.load(checkpoint_path=last)


def test_hashed_checkpoint_takes_every_model_checkpoint_argument():
    import inspect

    from pytorch_lightning.callbacks import ModelCheckpoint

    assert inspect.signature(HashedCheckpoint) == inspect.signature(ModelCheckpoint)
    assert isinstance(HashedCheckpoint(save_last=True, every_n_train_steps=100, save_top_k=0), ModelCheckpoint)


def test_language_tracking_save_writes_a_sidecar(tmp_path):
    model = zoo.create_model("lang_model_i_tiny", lingual={"vocab": ["the", "red"]})
    path = model.save(tmp_path / "m.ckpt")
    assert sidecar_path(path).read_text() == f"{sha256sum(path)}  m.ckpt\n"
    zoo.load(checkpoint_path=path)
    _flip_middle_byte(path)
    with pytest.raises(CheckpointError, match=r"m.ckpt: sha256 mismatch"):
        zoo.load(checkpoint_path=path)


def test_malformed_sidecar_names_itself(tmp_path):
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": zoo.create_model("clip_tiny").state_dict()}, path)
    sidecar_path(path).write_text("not a hash\n")
    with pytest.raises(CheckpointError, match=r"m.ckpt.sha256: not a sha256 sidecar"):
        zoo.load("clip_tiny", checkpoint_path=path)


def test_files_that_are_not_checkpoints_are_one_line(tmp_path):
    rng = random.Random(0)
    files = {f"random{i}.ckpt": rng.randbytes(rng.choice([1, 300, 4096])) for i in range(30)}
    files |= {"text.ckpt": b"hello world\nthis is not a checkpoint\n", "yaml.ckpt": b"a: 1\nb: [1, 2]\n",
              "empty.ckpt": b""}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError, match=r"not a readable checkpoint, corrupt or truncated") as e:
            zoo.load(checkpoint_path=tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and "\n" not in str(e.value), name
        assert "run code" not in str(e.value), name
    with pytest.raises(CheckpointError, match=r"text.ckpt: .*not a torch file, it starts with b'hello worl'"):
        zoo.load("clip_tiny", checkpoint_path=tmp_path / "text.ckpt")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_pickles_that_run_code_are_still_refused(tmp_path, protocol):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"state_dict": _RunsCode()}, protocol=protocol))
    with pytest.raises(CheckpointError, match=r"would run code on load \(.*GLOBAL (posix|nt|os)\.system"):
        zoo.load(checkpoint_path=path)


def _saved(tmp_path: Path, **hparams_changes) -> Path:
    model = zoo.create_model("clip_tiny")
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": {**dict(model.hparams), **hparams_changes}}
    model.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "m.ckpt")
    return tmp_path / "m.ckpt"


def test_unknown_hyperparameter_is_one_line(tmp_path):
    path = _saved(tmp_path, no_such_arg=1)
    with pytest.raises(CheckpointError, match=r"m.ckpt: hyper_parameters hold 'no_such_arg', which ClipClassifier"):
        zoo.load(checkpoint_path=path)
    assert isinstance(zoo.load("clip_tiny", checkpoint_path=path), zoo.ZooModule)  # the name says what to build
    with pytest.raises(CheckpointError, match=r"m.ckpt: cannot rebuild ClipClassifier .*modality"):
        zoo.load(checkpoint_path=_saved(tmp_path, modality="flow"))
    model = zoo.create_model("clip_tiny")
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": [1, 2]}
    model.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "list.ckpt")
    with pytest.raises(CheckpointError, match=r"list.ckpt: hyper_parameters must be a mapping"):
        zoo.load(checkpoint_path=tmp_path / "list.ckpt")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_written_files_get_the_mode_open_gives(tmp_path, mask):
    old = os.umask(mask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        served = tmp_path / "served.bin"
        served.write_bytes(b"y" * 1000)
        download(served.as_uri(), tmp_path / "cache" / "b.bin", sha256=sha256sum(served), progress=False)
    finally:
        os.umask(old)
    for path in (tmp_path / "a.bin", tmp_path / "cache" / "b.bin"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
    assert (tmp_path / "cache" / "b.bin").read_bytes() == b"y" * 1000


def test_download_checks_the_whole_hash_before_the_final_name(tmp_path, monkeypatch):
    served = tmp_path / "served.bin"
    served.write_bytes(b"z" * 5000)
    dest = tmp_path / "cache" / "c.bin"
    wrong = sha256sum(served)[:8] + "0" * 56  # right prefix, wrong hash: torch's hash_prefix check would pass it
    with pytest.raises(DownloadError) as e:
        download(served.as_uri(), dest, sha256=wrong, progress=False)
    message = str(e.value)
    assert served.as_uri() in message and str(dest) in message and wrong in message and "\n" not in message
    assert list(dest.parent.iterdir()) == []  # neither the file nor a temporary one is left
    with pytest.raises(DownloadError, match=r"could not download .*missing.bin .*place the file by hand"):
        download((tmp_path / "missing.bin").as_uri(), dest, progress=False)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(DownloadError, match="ZOO_OFFLINE is set"):
        download(served.as_uri(), dest, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_index_entry_with_a_yaml_int_sha256(tmp_path, monkeypatch):
    """An unquoted all-digit sha256 reads as an int in YAML: an error naming the file and the key."""
    path = tmp_path / "clip_tiny.x.yaml"
    path.write_text(yaml.safe_dump({
        "arch": "clip_tiny", "url": "https://example.invalid/x.pt", "size": 1, "dataset": "d", "metrics": {},
        "protocol": "p", "license": "MIT", "provenance": "t"}) + "sha256: " + "1" * 64 + "\n")
    monkeypatch.setenv("ZOO_INDEX_PATH", str(tmp_path))
    with pytest.raises(CheckpointError, match=r"clip_tiny.x.yaml: sha256 must be a string of 64 hex digits"):
        zoo.get_entry("clip_tiny.x")
