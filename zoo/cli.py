"""The ``zoo`` command: ``fit | validate | test | predict`` through LightningCLI, plus ``list``,
``info`` and ``synth``. Bad input ends with one line ``zoo: error: ...`` and exit code 2."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HELP = """usage: zoo <command> [options]

A PyTorch Lightning model zoo for video learning.

training and evaluation (LightningCLI; `zoo fit --help` lists every option):
  fit        train a model:            zoo fit --config configs/demo_clip_tiny.yaml
  validate   run the validation loop:  zoo validate --config FILE.yaml --ckpt_path last.ckpt
  test       run the test loop
  predict    run the prediction loop
  shared options: --logger tensorboard,wandb (CSV is always on), --run_name NAME

models and data:
  list       models and their named checkpoints:  zoo list [PATTERN] [--pretrained]
  info       one model or checkpoint:             zoo info NAME
  synth      synthetic videos in a real format:   zoo synth --format otb|otb99lang|alov|ucf101 --out DIR
  prepare    a low-resolution frame store (O3N):  zoo prepare ucf101|hmdb51 --root DIR --out STORE

benchmarks:
  benchmark  run a tracker on OTB and score it:   zoo benchmark otb --model NAME --root DIR [--subset otb2013]
             a language tracker on OTB99-lang:    zoo benchmark otb99lang --checkpoint CKPT --root DIR
             Model II/III from two trained networks: zoo benchmark otb99lang --checkpoint VIS --lingual LING
                                                  [--lang-model III] --root DIR
             score existing result files:         zoo benchmark otb --results DIR [DIR ...] --annotations DIR

environment: ZOO_HOME (checkpoint cache, default ~/.cache/zoo), ZOO_OFFLINE=1 (never download),
ZOO_INDEX_PATH (more checkpoint index folders), WANDB_MODE (wandb is offline unless set).
"""

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _import_components() -> None:
    """Import every built-in model and datamodule so configs can name them by class name."""
    import datamodules.alov  # noqa: F401
    import datamodules.odd_one_out  # noqa: F401
    import datamodules.otb  # noqa: F401
    import datamodules.otb99lang  # noqa: F401
    import datamodules.ucf101  # noqa: F401
    import zoo.models  # noqa: F401


def run_lightning(args: Sequence[str] | None) -> Any:
    """Run LightningCLI on ``args`` (``None``: the command line)."""
    from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

    from datamodules.base import ZooDataModule
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

        def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
            sub = self.config[self.subcommand] if self.subcommand else self.config
            parse_loggers(sub.get("logger"))
            run_name = sub.get("run_name") or type(self.model).__name__.lower()
            config = trainer_config(loggers=sub.get("logger"), run_name=run_name, **config)
            return super()._instantiate_trainer(config, callbacks)

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


def cmd_list(argv: Sequence[str]) -> int:
    import zoo

    p = argparse.ArgumentParser(prog="zoo list", description="Models and their named checkpoints.")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--pretrained", action="store_true", help="list named checkpoints only")
    a = p.parse_args(argv)
    entries = zoo.checkpoint_entries()
    if a.pretrained:
        for name in zoo.list_models(a.pattern, pretrained=True):
            e = entries[name]
            print(f"{name:40s} {e.dataset:24s} {_metrics(e.metrics)}")
        return 0
    for arch in zoo.list_models(a.pattern):
        doc = (zoo.model_entrypoint(arch).__doc__ or "").strip().splitlines()[0]
        tags = sorted(e.name for e in entries.values() if e.arch == arch)
        print(f"{arch:24s} {doc}")
        print(f"{'':24s} checkpoints: {', '.join(tags) if tags else 'none yet'}")
    return 0


def _metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v}" for k, v in metrics.items())


def cmd_info(argv: Sequence[str]) -> int:
    import zoo

    p = argparse.ArgumentParser(prog="zoo info", description="Describe a model or a named checkpoint.")
    p.add_argument("name")
    a = p.parse_args(argv)
    arch = a.name.split(".", 1)[0]
    builder = zoo.model_entrypoint(arch)
    print(f"model: {arch}")
    print(f"builder: {builder.__module__}.{builder.__name__}")
    print(f"about: {(builder.__doc__ or '').strip()}")
    with _offline():
        try:
            try:
                model = builder()
            except zoo.errors.DownloadError:  # backbone weights not cached: count the parameters without them
                model = builder(pretrained_backbone=False)
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
            print(f"  {key}: {getattr(e, key)}")
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
    from datamodules.synthetic import WRITERS, SynthConfig, synthesize

    p = argparse.ArgumentParser(prog="zoo synth", description="Write synthetic videos in a real dataset's layout.")
    p.add_argument("--format", required=True, choices=sorted(WRITERS))
    p.add_argument("--out", required=True, help="output folder (the dataset root)")
    p.add_argument("--videos", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=SynthConfig.num_frames)
    p.add_argument("--size", default=f"{SynthConfig.height}x{SynthConfig.width}", help="HEIGHTxWIDTH")
    p.add_argument("--appearance-change", type=float, default=0.0, metavar="A",
                   help="0 to 1: objects' colours drift this far and the light swings by A/2 over a video (default 0)")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    try:
        h, w = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        p.error(f"--size must be HEIGHTxWIDTH, not {a.size!r}")
    if not 0.0 <= a.appearance_change <= 1.0:
        p.error(f"--appearance-change must lie in [0, 1], not {a.appearance_change}")
    cfg = SynthConfig(height=h, width=w, num_frames=a.frames, appearance_change=a.appearance_change)
    out = synthesize(a.format, a.out, a.videos, a.seed, cfg, overwrite=a.overwrite)
    print(f"wrote {a.videos} synthetic videos in {a.format} layout to {out}")
    return 0


def cmd_prepare(argv: Sequence[str]) -> int:
    from datamodules.action import DATASETS, read_action_split
    from datamodules.frame_store import prepare_frame_store

    p = argparse.ArgumentParser(
        prog="zoo prepare",
        description="Decode every video of UCF101 or HMDB51 (all three splits) once into a low-resolution "
        "frame store that the O3N datamodules read with frame_store=OUT.",
    )
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--root", required=True, help="the dataset root (videos and split lists)")
    p.add_argument("--out", required=True, help="the store folder; an interrupted run resumes")
    p.add_argument("--size", default="128x171", help="HEIGHTxWIDTH of the stored frames")
    p.add_argument("--split-dir", default=None)
    p.add_argument("--backend", default="decord", choices=("decord", "pyav"))
    p.add_argument("--workers", type=int, default=max((os.cpu_count() or 2) - 1, 1))
    a = p.parse_args(argv)
    try:
        size = tuple(int(v) for v in a.size.lower().split("x"))
        assert len(size) == 2
    except (ValueError, AssertionError):
        p.error(f"--size must be HEIGHTxWIDTH, not {a.size!r}")
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
    from zoo.metrics.otb import CONVENTIONS

    p = argparse.ArgumentParser(prog="zoo benchmark", description="Benchmark trackers (OTB one-pass evaluation).")
    p.add_argument("dataset", choices=["otb", "otb99lang"])
    p.add_argument("--split", default="test", choices=["train", "test"], help="OTB99-lang split (default test)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="registered model name (arch or arch.tag) to run")
    src.add_argument("--checkpoint", help="a checkpoint file to run (zoo.load(checkpoint_path=...))")
    src.add_argument("--results", nargs="+", metavar="DIR", help="score existing result folders, one per tracker")
    p.add_argument("--root", help="OTB dataset root (<root>/<Seq>/img); needed to run a model")
    p.add_argument("--annotations", help="the toolkit's anno/ folder, to score without images")
    p.add_argument("--subset", default="otb100", help="otb2013, otb100 or tb50 (default otb100)")
    p.add_argument("--convention", default="otb", choices=sorted(CONVENTIONS))
    p.add_argument("--out", default="runs/benchmark/otb", help="where results/ and reports/ go")
    p.add_argument("--sequences", nargs="+", metavar="SEQ", help="only these sequences")
    p.add_argument("--allow-missing", action="store_true", help="score the sequences present, with a warning")
    p.add_argument("--batch-size", type=int, default=1, help="sequences tracked in lockstep")
    p.add_argument("--devices", default="auto")
    p.add_argument("--name", help="tracker name for results and reports (default: the tracker's own)")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights a --model has no checkpoint for (an "
                   "untrained network), so runs repeat (default 0)")
    p.add_argument("--flow", action="store_true", help="SINT+: the optical-flow check (SINT models only)")
    p.add_argument("--lingual", metavar="CKPT", help="a lingual network checkpoint that, with the visual network "
                   "(--model/--checkpoint), makes Model II or III, on otb99lang")
    p.add_argument("--lang-model", default="II", choices=["II", "III"], help="with --lingual: Model II (the sentence "
                   "gives the first box) or III (the lingual response mixed in every frame); default II")
    a = p.parse_args(argv)
    from pathlib import Path

    from zoo.benchmark.otb import compare, format_table, write_report

    if a.results:
        if not (a.annotations or a.root):
            p.error("--results needs --annotations (the toolkit's anno/ folder) or --root")
        performance = compare(
            a.results,
            anno_dir=a.annotations,
            root=None if a.annotations else a.root,
            subset=a.subset,
            convention=a.convention,
            allow_missing=a.allow_missing,
            names=a.sequences,
        )
        report = Path(a.out) / "reports" / "-".join(performance)
        write_report(performance, report)
    else:
        import zoo
        from zoo.benchmark.runner import benchmark_otb

        if not a.root:
            p.error("running a tracker needs --root (the OTB dataset)")
        if a.checkpoint:
            model = zoo.load(checkpoint_path=a.checkpoint)
        else:
            has_weights = a.model in zoo.list_models(pretrained=True) or (
                "." not in a.model and any(e.arch == a.model for e in zoo.checkpoint_entries().values())
            )
            import torch

            torch.manual_seed(a.seed)
            model = zoo.load(a.model, pretrained=has_weights)
        devices = int(a.devices) if a.devices.isdigit() else a.devices
        if a.flow:
            model = model.tracker(flow=True)
        if a.lingual:
            from zoo.lang_tracker import LanguageTracking, VisualSpecification

            if not isinstance(model, VisualSpecification):
                p.error("--lingual needs a visual specification network as --model or --checkpoint")
            lingual = zoo.load(checkpoint_path=a.lingual)
            lingual = lingual.lingual if isinstance(lingual, LanguageTracking) else lingual
            if a.lang_model == "III" and getattr(lingual, "attention", None) is None:
                p.error("--lang-model III needs a lingual network trained with word attention (attention: true)")
            model = LanguageTracking.from_networks(a.lang_model, lingual, model)
        performance = benchmark_otb(
            model, a.root, a.out, a.subset, a.convention, a.allow_missing, a.sequences, a.batch_size,
            name=a.name, devices=devices, dataset=a.dataset, split=a.split,
        )
        if performance is None:
            return 0
        report = Path(a.out) / "reports" / next(iter(performance))
    print(format_table(performance))
    print(f"report: {report / 'performance.json'} (plots beside it)")
    return 0


TOOLS = {"list": cmd_list, "info": cmd_info, "synth": cmd_synth, "prepare": cmd_prepare, "benchmark": cmd_benchmark}


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
    command, rest = argv[0], argv[1:]
    try:
        if command in TOOLS:
            return TOOLS[command](rest)
        if command in LIGHTNING_COMMANDS:
            run_lightning(argv if from_caller else None)
            return 0
        print(f"zoo: error: unknown command {command!r}; run `zoo --help`", file=sys.stderr)
        return 2
    except ZooError as e:
        print(f"zoo: error: {one_line(e)}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"zoo: error: {one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        if type(e).__name__ != "ArgumentError":
            raise
        print(f"zoo: error: {config_error(e)} (see `zoo {command} --help`)", file=sys.stderr)
        return 2


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
