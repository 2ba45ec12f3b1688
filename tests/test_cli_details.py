"""The small things a user sees: ``zoo list`` prefixes, ``--version``, per-benchmark ``--help`` with defaults,
tables without empty attribute columns, one colour per tracker, nothing dropped in silence."""

from __future__ import annotations

import logging

import pytest

from datamodules import otb
from datamodules.synthetic import SynthConfig, synthesize
from zoo.cli import main

CFG = SynthConfig(height=48, width=64, num_frames=6, min_size=6, max_size=10)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_prefix_version_and_no_checkpoints(capsys):
    code, out, _ = _run(capsys, "list", "sint")
    assert code == 0 and "sint_tiny" in out and "sint_vgg16" in out and "clip_tiny" not in out
    code, out, _ = _run(capsys, "list", "--pretrained")
    assert code == 0 and out.strip(), "an empty index says so"
    code, out, _ = _run(capsys, "--version")
    assert code == 0 and out.startswith("zoo ")


def test_benchmark_help_is_per_benchmark_with_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "otb", "--help"])
    text = capsys.readouterr().out
    assert "--lingual" not in text and "--lang-model" not in text and "default: otb100" in text
    with pytest.raises(SystemExit):
        main(["benchmark", "otb99lang", "--help"])
    assert "--lingual" in capsys.readouterr().out
    code, out, _ = _run(capsys, "benchmark", "--help")
    assert code == 0 and "otb " in out and "otb99lang" in out


def test_table_has_no_empty_attribute_columns_and_plots_share_colours(tmp_path, capsys):
    from zoo.benchmark.otb import format_table, scope, tracker_colours

    root = synthesize("otb", tmp_path / "otb", num_videos=2, seed=2, cfg=CFG)
    for name in ("b_first", "a_first"):
        code, out, err = _run(capsys, "benchmark", "otb", "--model", "identity_tracker", "--name", name, "--root",
                              str(root), "--subset", "folders", "--out", str(tmp_path / "bench"))
        assert code == 0, err
    header = next(line for line in out.splitlines() if line.startswith("tracker")).split()
    assert header == ["tracker", "AUC", "Prec@20", "NormP", "fps"], header
    import json

    perf = json.loads((tmp_path / "bench" / "reports" / "a_first" / "folders" / "performance.json").read_text())
    both = {"b_first": perf["a_first"], "a_first": perf["a_first"]}
    assert tracker_colours(both) == tracker_colours(dict(reversed(list(both.items()))))
    assert scope(both) == "folders (2 sequences)"
    assert "IV" not in format_table(both)


def test_folder_runs_of_real_otb_sequences_keep_their_attributes(shared):
    infos = otb.sequences("folders", shared / "otb" / "sequences")
    table = otb.sequence_table()
    assert infos and all(info.attributes == table[info.name].attributes for info in infos if info.name in table)
    assert any(info.attributes for info in infos)


def test_a_folder_without_ground_truth_is_named(tmp_path, caplog):
    root = synthesize("otb", tmp_path / "otb", num_videos=2, seed=2, cfg=CFG)
    (root / "Synth0001" / "groundtruth_rect.txt").unlink()
    with caplog.at_level(logging.WARNING):
        infos = otb.sequences("folders", root)
    assert [i.name for i in infos] == ["Synth0000"]
    assert "Synth0001" in caplog.text and "groundtruth_rect.txt" in caplog.text


def test_sequences_restricts_otb99lang(tmp_path):
    from datamodules.otb99lang import OTB99LangDataModule

    root = synthesize("otb99lang", tmp_path / "lang", num_videos=4, seed=2, cfg=CFG)
    dm = OTB99LangDataModule(str(root), split="test", subset="folders")
    dm.setup("test")
    every = [info.name for info in dm.test_set.infos]
    assert len(every) >= 2
    dm = OTB99LangDataModule(str(root), split="test", subset="folders", names=every[:1])
    dm.setup("test")
    assert [info.name for info in dm.test_set.infos] == every[:1]
