"""``zoo benchmark otb``: run a tracker on OTB (one-pass evaluation) and score it, or score result folders."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.commands import ArgumentParser, devices, non_negative_int, positive_int

DESCRIPTION = "run a tracker on OTB and score it (or score existing result folders)"


def tracker_parser(dataset: str, description: str) -> ArgumentParser:
    """The options every tracking benchmark shares; ``dataset`` is ``otb`` or ``otb99lang``."""
    from zoo.metrics.otb import CONVENTIONS

    p = ArgumentParser(prog=f"zoo benchmark {dataset}", description=description)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="registered model name (arch or arch.tag) to run")
    src.add_argument("--checkpoint", help="a checkpoint file to run (zoo.load(checkpoint_path=...))")
    if dataset == "otb":
        src.add_argument("--results", nargs="+", metavar="DIR", help="score existing result folders, one per tracker")
    p.add_argument("--root", help="the dataset root" + (" (<root>/<Seq>/img); needed to run a model"
                                                         if dataset == "otb" else " (OTB_videos/, OTB_query_*/)"))
    if dataset == "otb":
        p.add_argument("--annotations", help="the toolkit's anno/ folder, to score --results without images")
    p.add_argument("--subset", default="otb100", help="otb2013, otb100, tb50, or folders (every sequence folder "
                   "under --root, all its frames)")
    p.add_argument("--convention", default="otb", choices=sorted(CONVENTIONS))
    p.add_argument("--out", default=f"runs/benchmark/{dataset}", help="where results/ and reports/ go")
    p.add_argument("--sequences", nargs="+", metavar="SEQ", help="only these sequences (each must exist)")
    p.add_argument("--allow-missing", action="store_true", help="score the sequences present, with a warning")
    p.add_argument("--batch-size", type=positive_int, default=1, help="sequences tracked in lockstep")
    p.add_argument("--decode-workers", type=non_negative_int, default=None, help="threads reading the next frames "
                   "while the tracker runs (default: 4 with CUDA, else 0)")
    p.add_argument("--devices", type=devices, default="auto", help="auto, a number of devices, or a list 0,1")
    p.add_argument("--name", help="tracker name for results and reports (default: the --model name, else the "
                   "tracker's own)")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights a --model has no checkpoint for (an "
                   "untrained network), so runs repeat")
    p.add_argument("--flow", action="store_true", help="SINT+: the optical-flow check (SINT models only)")
    return p


def build_model(p: ArgumentParser, a: Any) -> tuple[Any, dict[str, Any]]:
    """The model ``--model`` or ``--checkpoint`` names, and a description of where its weights come from."""
    import torch

    import zoo
    from zoo.hub import sha256sum

    if a.checkpoint:
        model = zoo.load(checkpoint_path=a.checkpoint)
        return model, {"checkpoint_sha256": sha256sum(a.checkpoint)}
    if "." in a.model:
        entry = zoo.get_entry(a.model)  # an unknown tag is an error listing the tags that exist
        return zoo.load(a.model), {"model": entry.name, "checkpoint_sha256": entry_sha256(entry)}
    zoo.model_entrypoint(a.model)
    # an architecture with a downloadable checkpoint runs it; the authors' weights (``convert``) only when named
    tagged = [e for e in zoo.checkpoint_entries().values() if e.arch == a.model and (e.default or not e.convert)]
    if tagged:
        entry = zoo.get_entry(a.model)
        return zoo.load(a.model), {"model": entry.name, "checkpoint_sha256": entry_sha256(entry)}
    torch.manual_seed(a.seed)
    return zoo.load(a.model, pretrained=False), {"model": a.model, "weights": "random", "seed": a.seed}


def entry_sha256(entry: Any) -> str | None:
    """The sha256 of a named checkpoint's file: the index's, or for weights the user converted (``convert``) the
    converted file's, from the sidecar the converter wrote beside it."""
    from zoo.hub import read_sha256_sidecar, sha256sum
    from zoo.loading import cached_checkpoint

    if not entry.convert:
        return entry.sha256
    path = cached_checkpoint(entry)
    return read_sha256_sidecar(path) or sha256sum(path)


def as_benchmarked_tracker(p: ArgumentParser, a: Any, model: Any) -> Any:
    """``--flow`` applied, and a clear error for a model that is not a tracker."""
    from zoo.tracking.base import Tracker

    what = a.model or a.checkpoint
    if not isinstance(model, Tracker) and not callable(getattr(model, "tracker", None)):
        p.error(f"{what} is a {type(model).__name__}, not a tracker; benchmark a tracking model "
                f"(zoo list shows them)")
    if a.flow:
        make = getattr(model, "tracker", None)
        if make is None or "flow" not in inspect.signature(make).parameters:
            p.error(f"--flow: {what} has no optical-flow check (SINT models only)")
        return model.tracker(flow=True)
    return model


def run_tracker(p: ArgumentParser, a: Any, dataset: str, model: Any, source: dict[str, Any]) -> int:
    """Benchmark ``model`` and print the table."""
    from zoo.benchmark.otb import format_table, report_dir
    from zoo.benchmark.tracking import benchmark_otb

    if not a.root:
        p.error("running a tracker needs --root (the dataset)")
    name = a.name or (f"{a.model}{'+flow' if a.flow else ''}" if a.model and dataset == "otb" else None)
    performance = benchmark_otb(
        model, a.root, a.out, a.subset, a.convention, a.allow_missing, a.sequences, a.batch_size,
        name=name, devices=a.devices, dataset=dataset, split=getattr(a, "split", "test"), source=source,
        decode_workers=a.decode_workers,
    )
    if performance is None:  # not rank 0
        return 0
    name, perf = next(iter(performance.items()))
    meta = perf["meta"]
    if meta["resumed_sequences"]:
        folder = Path(a.out) / "results" / name
        print(f"resumed: {meta['resumed_sequences']} of {meta['num_sequences']} sequences were already done in "
              f"{folder} (same run {meta['run_identity']}); {meta['tracked_sequences']} tracked", file=sys.stderr)
    print(format_table(performance))
    if meta.get("fps_with_decoding"):
        print(f"speed: {perf['overall']['speed_fps']:.1f} fps the tracker alone, {meta['fps_with_decoding']:.1f} fps "
              f"with the frames read ({meta['decode_workers']} reading threads), {meta['tracked_sequences']} "
              "sequences tracked in this run")
    print(f"report: {report_dir(a.out, [name], meta) / 'performance.json'} (plots beside it)")
    return 0


def main(argv: Sequence[str]) -> int:
    p = tracker_parser("otb", "Benchmark a tracker on OTB (one-pass evaluation), or score result folders.")
    a = p.parse_args(argv)
    if a.results:
        from zoo.benchmark.otb import compare, format_table, report_dir, write_report

        if not (a.annotations or a.root):
            p.error("--results needs --annotations (the toolkit's anno/ folder) or --root")
        performance = compare(a.results, anno_dir=a.annotations, root=None if a.annotations else a.root,
                              subset=a.subset, convention=a.convention, allow_missing=a.allow_missing,
                              names=a.sequences)
        report = report_dir(a.out, list(performance), next(iter(performance.values()))["meta"])
        write_report(performance, report)
        print(format_table(performance))
        print(f"report: {report / 'performance.json'} (plots beside it)")
        return 0
    if not a.root:
        p.error("running a tracker needs --root (the OTB dataset)")
    model, source = build_model(p, a)
    return run_tracker(p, a, "otb", as_benchmarked_tracker(p, a, model), {**source, "flow": a.flow})
