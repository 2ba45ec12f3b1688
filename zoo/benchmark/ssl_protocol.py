"""The self-supervised evaluation protocol in one command (O3N, Sec. 5.2, and its successors): for each split, a
classifier starts from the self-supervised network and is fitted on the split's training list, fully
(``finetune``) or as a linear classifier on frozen features (``linear``: ``freeze_branch``); then
``zoo.benchmark.classification`` scores each split's checkpoint on its test list.

Each split is one ``zoo fit`` run of the given config (LightningCLI), in ``OUT/<protocol>/split<k>/version_0``, with
the seed fixed (``--seed``, the same for every split and every pretrained network compared). A split whose run
finished has ``done.json`` beside its run folder and is not fitted again; one that was interrupted resumes from its
``last.ckpt``. ``OUT/<protocol>/protocol.json`` records what the runs were made from (the pretrained network's and
the config's sha256, the seed); another pretrained network into the same folder is refused.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.hub import atomic_write_bytes, sha256sum

PROTOCOLS = ("finetune", "linear")
DONE = "done.json"


def protocol_identity(pretrained: str, protocol: str, config: str, seed: int, dataset: str, root: str
                      ) -> dict[str, Any]:
    return {"pretrained_sha256": sha256sum(pretrained) if Path(pretrained).is_file() else str(pretrained),
            "protocol": protocol, "config_sha256": sha256sum(config), "seed": seed, "dataset": dataset,
            "root": str(Path(root).resolve())}


def check_folder(folder: Path, identity: dict[str, Any]) -> None:
    """Record ``identity`` in ``folder/protocol.json``, or refuse a folder made from something else."""
    marker = folder / "protocol.json"
    if marker.is_file():
        theirs = json.loads(marker.read_text(encoding="utf-8"))
        if theirs != identity:
            key = next(k for k in sorted(set(theirs) | set(identity)) if theirs.get(k) != identity.get(k))
            raise ZooError(f"{folder}: holds runs made with another {key} ({theirs.get(key)!r}, here "
                           f"{identity.get(key)!r}); give another --out or delete the folder")
        return
    atomic_write_bytes(marker, json.dumps(identity, indent=1, sort_keys=True).encode())


def last_checkpoint(run: Path) -> Path | None:
    """The ``last.ckpt`` of a split's run folder, if a fit saved one."""
    found = sorted(run.glob("version_*/checkpoints/last.ckpt"))
    return found[-1] if found else None


def fit_split(config: str, dataset: str, root: str, split: int, pretrained: str, protocol: str, seed: int,
              folder: Path, extra: list[str]) -> Path:
    """Fit one split (resuming an interrupted run); returns its final checkpoint."""
    from zoo.cli import run_lightning

    run = folder / f"split{split}"
    done = run / DONE
    if done.is_file():
        return Path(json.loads(done.read_text(encoding="utf-8"))["checkpoint"])
    args = ["fit", "--config", config, "--seed_everything", str(seed), "--logger", "csv",
            "--run_name", f"split{split}", "--trainer.default_root_dir", str(folder),
            "--data.init_args.root", str(root), "--data.init_args.split", str(split),
            "--model.init_args.pretrained", str(pretrained)]
    if dataset != "ucf101":
        args += ["--data.init_args.dataset", dataset]
    if protocol == "linear":
        args += ["--model.init_args.freeze_branch", "true"]
    resume = last_checkpoint(run)
    if resume is not None:
        args += ["--ckpt_path", str(resume)]
    with warnings.catch_warnings():  # the command line is the benchmark's: LightningCLI is run with its own args
        warnings.filterwarnings("ignore", message=r".*LightningCLI's args parameter.*")
        cli = run_lightning([*args, *extra])
    path = Path(cli.trainer.checkpoint_callback.last_model_path or "")
    if not path.is_file():
        path = last_checkpoint(run)
    if path is None or not path.is_file():
        raise ZooError(f"{run}: the fit of split {split} saved no checkpoint (enable checkpointing in {config})")
    atomic_write_bytes(done, json.dumps({"checkpoint": str(path), "sha256": sha256sum(path)}).encode())
    return path


def run_protocol(dataset: str, pretrained: str, protocol: str, config: str, root: str, splits: list[int],
                 out: str, seed: int = 0, extra: list[str] | None = None) -> list[str]:
    """Fit every split from ``pretrained`` by ``protocol``; returns the checkpoints in ``splits`` order."""
    if protocol not in PROTOCOLS:
        raise ZooError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if not Path(config).is_file():
        raise ZooError(f"{config}: config file not found")
    folder = Path(out) / protocol
    check_folder(folder, protocol_identity(pretrained, protocol, config, seed, dataset, root))
    return [str(fit_split(config, dataset, root, k, pretrained, protocol, seed, folder, list(extra or [])))
            for k in splits]
