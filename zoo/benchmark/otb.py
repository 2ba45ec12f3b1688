"""Scoring OTB result files, reports (got10k-style ``performance.json``), plots and tables.

A results folder holds one ``<Seq>.txt`` per sequence (``x,y,w,h`` per frame, any of the toolkits'
spellings of the names) and optionally ``times/<Seq>_time.txt`` (seconds per frame). The tracker's name
is the folder's name.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datamodules.otb import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    find_file,
    load_ground_truth,
    lookup,
    name_aliases,
    normalize_name,
    read_boxes,
    sequence_table,
    sequences,
    short_list,
)
from zoo.benchmark.runner import IDENTITY_FILE, identity_key, read_identity
from zoo.errors import DatasetError
from zoo.hub import atomic_write_bytes
from zoo.metrics.otb import (
    PRECISION_THRESHOLDS,
    SUCCESS_THRESHOLDS,
    align,
    curves,
    frame_scores,
    get_convention,
    summarize,
)

log = logging.getLogger(__name__)


def read_times(results_dir: Path, name: str) -> np.ndarray | None:
    """Seconds per frame from ``times/<Seq>_time.txt``, if the run wrote them."""
    folder = results_dir / "times"
    if not folder.is_dir():
        return None
    wanted = normalize_name(name)
    for path in folder.glob("*_time.txt"):
        if normalize_name(path.name[: -len("_time.txt")]) == wanted:
            return _read_seconds(path)
    return None


def _read_seconds(path: Path) -> np.ndarray:
    """One number of seconds per line; a bad line is a DatasetError naming ``file:line``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DatasetError(f"{path}:{line}: not UTF-8 text (byte 0x{e.object[e.start]:02x})") from None
    values = []
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = float(line.strip())
        except ValueError:
            raise DatasetError(f"{path}:{line_no}: not a number of seconds: {line.strip()[:40]!r}") from None
        if not np.isfinite(value):
            raise DatasetError(f"{path}:{line_no}: not a finite number of seconds: {line.strip()[:40]!r}")
        values.append(value)
    return np.asarray(values, dtype=np.float64)


def report_dir(out_dir: str | os.PathLike, trackers: list[str], meta: dict[str, Any]) -> Path:
    """``out_dir/reports/<trackers>/<subset>[-<convention>]``: one report per trackers, subset and convention,
    so scoring otb2013 never overwrites the otb100 report."""
    key = meta["subset"] + ("" if meta["convention"] == "otb" else f"-{meta['convention']}")
    return Path(out_dir) / "reports" / "-".join(trackers) / key


def score_results(
    results_dir: str | os.PathLike,
    *,
    anno_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    subset: str = "otb100",
    convention: str = "otb",
    allow_missing: bool = False,
    names: list[str] | None = None,
    own_first_box: bool | None = None,
) -> dict[str, Any]:
    """Score one tracker's result files against ground truth from ``anno_dir`` or the dataset ``root``.

    Returns ``{"overall", "seq_wise", "attribute_wise", "meta"}``; ``overall`` and each ``seq_wise`` entry
    carry got10k's keys (``success_curve``, ``precision_curve``, ``success_score``, ``precision_score``,
    ``success_rate``, ``speed_fps``) plus the normalised precision.

    ``own_first_box``: score the tracker's own first-frame box rather than the ground truth the convention puts
    there; None: as the run recorded it (``"first_box": "tracker"`` in the folder's ``run.json``, written when a
    language tracker started from the sentence without the box), else the convention's rule.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DatasetError(f"{results_dir}: results folder not found")
    conv = get_convention(convention)
    marker = results_dir / IDENTITY_FILE
    identity = read_identity(marker) if marker.is_file() else None  # a zoo run: the report says which
    if own_first_box is None:
        own_first_box = identity is not None and identity.get("first_box") == "tracker"
    if own_first_box:
        conv = replace(conv, first_frame_gt=False)
    infos = sequences(subset, root)
    if names is not None:
        keep = {lookup(n).name for n in names} if subset != "folders" else set(names)
        infos = [info for info in infos if info.name in keep]
    found = {info.name: find_file(results_dir, info) for info in infos}
    missing = [n for n, p in found.items() if p is None]
    if missing and len(missing) == len(infos):
        raise DatasetError(f"{results_dir}: no result file for any of the {len(infos)} {subset} sequences")
    if missing and not allow_missing:
        raise DatasetError(f"{results_dir}: no result file for {len(missing)} {subset} sequences: {', '.join(missing)}")
    if missing:
        log.warning(
            "%s: scoring %d sequences; no results for %s", results_dir, len(infos) - len(missing), short_list(missing)
        )
    everything = list(sequence_table().values()) + (infos if subset == "folders" else [])
    known = {a for info in everything for a in name_aliases(info)}
    unknown = sorted(p.stem for p in results_dir.glob("*.txt") if normalize_name(p.stem) not in known)
    if unknown:
        log.warning("%s: ignoring files of unknown sequences: %s", results_dir, ", ".join(unknown))

    seq_wise: dict[str, Any] = {}
    per_seq: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    total_frames, total_seconds = 0, 0.0
    from tqdm import tqdm

    for info in tqdm(infos, desc=f"scoring {results_dir.name}", unit="seq", leave=False,
                     disable=not sys.stderr.isatty() or len(infos) < 10):
        path = found[info.name]
        if path is None:
            continue
        boxes, lines = read_boxes(path, with_lines=True)
        gt = load_ground_truth(info, root=root, anno_dir=anno_dir)
        pred, gt_t = align(torch.from_numpy(boxes), torch.from_numpy(gt), conv, info.init_omit_frames, str(path), lines)
        s, p, n = curves(*frame_scores(pred, gt_t, conv))
        per_seq[info.name] = (s, p, n)
        times = read_times(results_dir, info.name)
        fps = -1.0
        if times is not None and times[times > 0].size:
            total_frames += int((times > 0).sum())
            total_seconds += float(times[times > 0].sum())
            fps = float((times > 0).sum() / times[times > 0].sum())
        seq_wise[info.name] = {**summarize(s[None], p[None], n[None]), "speed_fps": fps, "num_frames": len(gt_t)}
    if not per_seq:
        raise DatasetError(f"{results_dir}: no sequence of {subset} to score")
    stack = [torch.stack(x) for x in zip(*per_seq.values())]
    overall = summarize(*stack)
    overall["speed_fps"] = total_frames / total_seconds if total_seconds > 0 else -1.0
    attribute_wise = {}
    for att in ATTRIBUTES:
        names = [info.name for info in infos if info.name in per_seq and att in info.attributes]
        if names:
            att_stack = [torch.stack(x) for x in zip(*(per_seq[n] for n in names))]
            attribute_wise[att] = {**summarize(*att_stack), "num_sequences": len(names), "name": ATTRIBUTE_NAMES[att]}
    from zoo import __version__

    meta = {
        "convention": conv.name,
        "first_frame": "ground truth" if conv.first_frame_gt else "tracker",
        "subset": subset,
        "num_sequences": len(per_seq),
        "zoo_version": __version__,
        "results_dir": str(results_dir),
    }
    if identity is not None:  # (``zoo.benchmark.runner``)
        meta["run_identity"] = identity_key(identity)
    return {"overall": overall, "seq_wise": seq_wise, "attribute_wise": attribute_wise, "meta": meta}


def compare(results_dirs: list[str | os.PathLike], **kwargs: Any) -> dict[str, dict[str, Any]]:
    """``{tracker_name: performance}`` for several results folders (names are the folders' names)."""
    performance = {}
    for d in results_dirs:
        name = Path(d).name
        if name in performance:
            raise DatasetError(f"{d}: two results folders are named {name!r}")
        performance[name] = score_results(d, **kwargs)
    return performance


def write_report(performance: dict[str, dict[str, Any]], out_dir: str | os.PathLike) -> Path:
    """``performance.json`` (atomically), ``success_plots.png``, ``precision_plots.png``, ``attributes.png``."""
    out_dir = Path(out_dir)
    path = out_dir / "performance.json"
    atomic_write_bytes(path, json.dumps(performance, indent=2).encode())
    plot_curves(performance, out_dir)
    plot_attributes(performance, out_dir)
    return path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.part.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)


def plot_curves(performance: dict[str, dict[str, Any]], out_dir: Path, key: str = "overall") -> None:
    """Success and precision plots of OPE, trackers in the legend by score, as the OTB toolkit draws them."""
    plt = _plt()
    colours = tracker_colours(performance)
    for kind, thresholds, score, xlabel, ylabel, legend_loc in (
        ("success", SUCCESS_THRESHOLDS, "success_score", "Overlap threshold (IoU)", "Success rate", "lower left"),
        ("precision", PRECISION_THRESHOLDS, "precision_score", "Location error threshold (pixels)", "Precision",
         "lower right"),
    ):
        fig, ax = plt.subplots(figsize=(5, 4))
        order = sorted(performance, key=lambda n: -performance[n][key][score])
        for name in order:
            perf = performance[name][key]
            ax.plot(thresholds.numpy(), perf[f"{kind}_curve"], label=f"{name} [{perf[score]:.3f}]", linewidth=2,
                    color=colours[name])
        ax.set(
            xlabel=xlabel,
            ylabel=ylabel,
            title=f"{kind.capitalize()} plots of OPE - {scope(performance)}",
            xlim=(0, float(thresholds[-1])),
            ylim=(0, 1),
        )
        ax.grid(alpha=0.3)
        ax.legend(loc=legend_loc, fontsize=8)
        _save(fig, out_dir / f"{kind}_plots.png")
        plt.close(fig)


def tracker_colours(performance: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One colour per tracker, by name, the same in every plot of a report."""
    import matplotlib

    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(sorted(performance))}


def scope(performance: dict[str, dict[str, Any]]) -> str:
    """``otb100 (4 sequences)``: what a report covers."""
    meta = next(iter(performance.values()))["meta"]
    n = meta["num_sequences"]
    return f"{meta['subset']} ({n} sequence{'s' if n != 1 else ''})"


def plot_attributes(performance: dict[str, dict[str, Any]], out_dir: Path) -> None:
    """Success plots per attribute, one panel each."""
    plt = _plt()
    colours = tracker_colours(performance)
    fig, axes = plt.subplots(3, 4, figsize=(16, 11))
    for ax, att in zip(axes.flat, ATTRIBUTES):
        entries = {n: p["attribute_wise"][att] for n, p in performance.items() if att in p["attribute_wise"]}
        for name in sorted(entries, key=lambda n: -entries[n]["success_score"]):
            e = entries[name]
            ax.plot(SUCCESS_THRESHOLDS.numpy(), e["success_curve"], label=f"{name} [{e['success_score']:.3f}]",
                    color=colours[name])
        count = next(iter(entries.values()))["num_sequences"] if entries else 0
        ax.set(title=f"{ATTRIBUTE_NAMES[att]} ({count})", xlim=(0, 1), ylim=(0, 1),
               xlabel="Overlap threshold (IoU)", ylabel="Success rate")
        ax.grid(alpha=0.3)
        if entries:
            ax.legend(fontsize=7, loc="lower left")
    axes.flat[-1].axis("off")
    fig.suptitle(f"Success plots of OPE per attribute - {scope(performance)}")
    _save(fig, out_dir / "attributes.png")
    plt.close(fig)


def format_table(performance: dict[str, dict[str, Any]]) -> str:
    """A printed table: one row per tracker, overall and per-attribute success (the attributes some tracker's
    sequences have; none for sequences without attributes)."""
    present = [a for a in ATTRIBUTES if any(a in p["attribute_wise"] for p in performance.values())]
    width = max([20] + [len(n) for n in performance])
    head = f"{'tracker':{width}s} {'AUC':>6s} {'Prec@20':>8s} {'NormP':>6s} {'fps':>8s}" + "".join(
        f" {a:>5s}" for a in present
    )
    rows = [head, "-" * len(head)]
    for name in sorted(performance, key=lambda n: -performance[n]["overall"]["success_score"]):
        p = performance[name]
        o = p["overall"]
        atts = "".join(
            f" {p['attribute_wise'][a]['success_score']:5.3f}" if a in p["attribute_wise"] else "     -"
            for a in present
        )
        fps = f"{o['speed_fps']:8.1f}" if o["speed_fps"] > 0 else f"{'-':>8s}"
        scores = f"{o['success_score']:6.3f} {o['precision_score']:8.3f} {o['normalized_precision_score']:6.3f}"
        rows.append(f"{name:{width}s} {scores} {fps}{atts}")
    meta = next(iter(performance.values()))["meta"]
    rows.append(f"({meta['subset']}, {meta['num_sequences']} sequences, convention {meta['convention']})")
    return "\n".join(rows)
