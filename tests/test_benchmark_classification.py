"""Action recognition on UCF101 / HMDB51 over the splits (``zoo benchmark ucf101|hmdb51``) and classifying a video
file (``zoo predict --video``, ``predict_video``): the real split lists, the per-split results and their mean, the
video accuracy against a hand computation from the saved logits, resuming, the split a checkpoint was trained on,
and the bad-input errors."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

import zoo
from datamodules.action import read_action_split
from datamodules.ucf101 import UCF101DataModule
from zoo.cli import main
from zoo.trainer import build_trainer

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["Linear", "Bouncing", "Circular", "ZigZag", "Still", "Growing", "Shrinking"]  # the synthetic motions
SAMPLING = {"size": [64, 80], "stride": 2}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def small_ucf101(tmp_path_factory) -> Path:
    """28 synthetic UCF101 videos of 16 frames (4 per class): split 1 tests 14, splits 2 and 3 test 7 each."""
    out = tmp_path_factory.mktemp("bench") / "ucf101"
    assert main(["synth", "--format", "ucf101", "--out", str(out), "--videos", "28", "--frames", "16",
                 "--size", "64x80"]) == 0
    return out


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> Path:
    """A seeded untrained tiny TSN saved with model.save: no split recorded, so it is scored on every split."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "clip_tiny.pt"
    zoo.create_model("clip_tiny", num_classes=7, clip_sampling=SAMPLING).save(path)
    return path


@pytest.fixture(scope="module")
def fitted(small_ucf101, tmp_path_factory) -> Path:
    """The tiny TSN fitted a few steps on split 1 by the zoo's Trainer: its checkpoint records split 1."""
    pl.seed_everything(0)
    model = zoo.create_model("clip_tiny", num_classes=7)
    data = UCF101DataModule(str(small_ucf101), split=1, clip_len=8, stride=2, size=(64, 80), batch_size=4,
                            num_workers=0)
    trainer = build_trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=1, loggers="", logger=False,
                            default_root_dir=str(tmp_path_factory.mktemp("fit")), enable_progress_bar=False)
    trainer.fit(model, data)
    return Path(trainer.checkpoint_callback.last_model_path)


PUBLISHED = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}  # train / test videos of UCF101's three splits


@pytest.mark.parametrize("split", [1, 2, 3])
def test_real_ucf101_splits_have_101_classes_and_published_sizes(shared, split):
    root = shared / "ucf101"
    classes, train = read_action_split("ucf101", root, split, True)
    _, test = read_action_split("ucf101", root, split, False)
    assert len(classes) == 101
    assert (len(train), len(test)) == PUBLISHED[split]
    assert {label for _, label in train} == {label for _, label in test} == set(range(101))
    assert not {rel for rel, _ in train} & {rel for rel, _ in test}
    assert len({rel for rel, _ in train} | {rel for rel, _ in test}) == 13320


def test_three_splits_give_per_split_results_and_their_mean(small_ucf101, untrained, tmp_path, capsys):
    out = tmp_path / "bench"
    code, printed, _ = run(capsys, "benchmark", "ucf101", "--checkpoint", str(untrained), "--root",
                           str(small_ucf101), "--splits", "1", "2", "3", "--out", str(out), "--clips", "3",
                           "--workers", "0")
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert sorted(report["splits"]) == ["1", "2", "3"]
    assert [report["splits"][s]["num_videos"] for s in "123"] == [14, 7, 7]
    for k in (1, 2, 3):
        assert (out / f"split{k}.result.json").is_file() and (out / f"split{k}.logits.npz").is_file()
        assert (out / f"confusion_split{k}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for key in ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_acc"):
        values = [report["splits"][s][key] for s in "123"]
        assert report["mean"][key] == pytest.approx(np.mean(values))
        assert report["std"][key] == pytest.approx(np.std(values))
    assert report["mixed_splits"] is False
    assert set(report["splits"]["1"]["per_class"]) == set(CLASSES)
    assert "mean" in printed and "std" in printed and "video@1" in printed


def test_ddp_ranks_split_the_videos_and_give_the_one_process_report(small_ucf101, untrained, tmp_path, capsys):
    """Two CPU processes (DDP): each scores part of a split's videos (split 2's 7 videos are padded to 4 + 4 by the
    sampler, the repeat dropped), rank 0 gathers them and writes the same report and logits as one process."""
    args = ["benchmark", "ucf101", "--checkpoint", str(untrained), "--root", str(small_ucf101), "--splits", "1", "2",
            "--clips", "2", "--workers", "0"]
    assert run(capsys, *args, "--out", str(tmp_path / "one"))[0] == 0
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "ddp_classification.py"), *args, "--out",
                           str(tmp_path / "two"), "--devices", "2"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in done.stdout + done.stderr  # a second rank ran
    one, two = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("one", "two"))
    assert two == one and [two["splits"][s]["num_videos"] for s in "12"] == [14, 7]
    for k in (1, 2):
        a, b = (np.load(tmp_path / d / f"split{k}.logits.npz") for d in ("one", "two"))
        assert list(a["videos"]) == list(b["videos"]) and np.allclose(a["logits"], b["logits"], atol=1e-5)


def test_video_accuracy_equals_a_hand_computation_from_the_saved_logits(small_ucf101, untrained, tmp_path, capsys):
    out = tmp_path / "bench"
    assert run(capsys, "benchmark", "ucf101", "--checkpoint", str(untrained), "--root", str(small_ucf101),
               "--splits", "1", "--out", str(out), "--clips", "3", "--crops", "3", "--workers", "0")[0] == 0
    result = json.loads((out / "split1.result.json").read_text())
    saved = np.load(out / "split1.logits.npz")
    logits, labels = saved["logits"].astype(np.float64), saved["labels"]
    assert logits.shape == (14, 9, 7)  # 3 clips x 3 crops
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    video = probs.mean(1)
    assert result["video_top1"] == pytest.approx(np.mean(video.argmax(1) == labels))
    top5 = np.argsort(-video, 1)[:, :5]
    assert result["video_top5"] == pytest.approx(np.mean([labels[i] in top5[i] for i in range(len(labels))]))
    assert result["clip_top1"] == pytest.approx(np.mean(probs.argmax(2) == labels[:, None]))
    # the logits are the model's: the first video's first view by hand (clip starts 0, 0, 1 of 16 frames at stride
    # 2; frames decoded at 64 x 80 * 256/224 = 73 x 91; the left crop of the first clip)
    from datamodules.video import open_video

    with open_video(small_ucf101 / str(saved["videos"][0]), size=(73, 91)) as video_file:
        frames = video_file.get_frames(np.arange(0, 16, 2))
    clip = torch.from_numpy(np.ascontiguousarray(frames[:, 4:68, 0:80])).permute(0, 3, 1, 2)[None]
    model = zoo.load(checkpoint_path=untrained)
    with torch.no_grad():
        expected = model(clip)[0].numpy()
    np.testing.assert_allclose(logits[0, 0], expected, rtol=1e-4, atol=1e-5)


def test_a_resumed_benchmark_gives_the_identical_report(small_ucf101, untrained, tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["benchmark", "ucf101", "--checkpoint", str(untrained), "--root", str(small_ucf101), "--splits", "1", "2",
            "3", "--out", str(out), "--clips", "2", "--workers", "0"]
    assert run(capsys, *argv)[0] == 0
    report = (out / "report.json").read_bytes()
    logits = (out / "split2.logits.npz").read_bytes()
    (out / "split2.result.json").unlink()  # as if stopped while scoring split 2
    (out / "report.json").unlink()
    code, _, err = run(capsys, *argv)
    assert code == 0
    assert "resumed: splits 1, 3" in err
    assert (out / "report.json").read_bytes() == report
    assert np.array_equal(np.load(out / "split2.logits.npz")["logits"], np.load(io.BytesIO(logits))["logits"])
    code, _, err = run(capsys, *argv)  # a finished run: every split resumed, the same report
    assert "resumed: splits 1, 2, 3" in err and (out / "report.json").read_bytes() == report
    code, _, err = run(capsys, *argv[:-4], "--clips", "3", "--workers", "0")  # other options: not mixed in
    assert code == 2 and err.count("\n") == 1 and "options.clips" in err


def test_o3n_classifier_is_benchmarked_with_its_own_clips(small_ucf101, tmp_path, capsys):
    torch.manual_seed(0)
    path = tmp_path / "o3n.pt"
    from zoo.o3n import O3NClassifier

    O3NClassifier(num_classes=7, branch="tiny", fc_dim=32, encoding="stack_of_differences", class_names=CLASSES,
                  clip_sampling={"size": [64, 80], "strategy": "random", "window_factor": 1.5}).save(path)
    out = tmp_path / "bench"
    assert run(capsys, "benchmark", "ucf101", "--checkpoint", str(path), "--root", str(small_ucf101), "--splits",
               "2", "--out", str(out), "--clips", "4", "--workers", "0")[0] == 0
    result = json.loads((out / "split2.result.json").read_text())
    assert result["clip_spec"]["strategy"] == "random" and result["views_per_video"] == 4
    assert np.load(out / "split2.logits.npz")["logits"].shape == (7, 4, 7)


def test_fit_records_class_names_and_zoo_predict_classifies_a_real_video(fitted, shared, capsys):
    ckpt = torch.load(fitted, weights_only=True, map_location="cpu")
    assert ckpt["hyper_parameters"]["class_names"] == CLASSES
    assert ckpt["hyper_parameters"]["clip_sampling"] == SAMPLING
    assert ckpt["datamodule_hyper_parameters"]["split"] == 1
    video = shared / "videos" / "bikes.mp4"
    code, printed, err = run(capsys, "predict", "--checkpoint", str(fitted), "--video", str(video))
    assert code == 0 and err == ""
    rows = [line.split() for line in printed.splitlines()[1:]]
    assert len(rows) == 5 and all(r[1] in CLASSES for r in rows)
    probs = [float(r[2]) for r in rows]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    top = zoo.load(checkpoint_path=fitted).predict_video(video, top=5)  # the Python form, the same answer
    assert [name for name, _ in top] == [r[1] for r in rows]
    assert [round(p, 4) for _, p in top] == pytest.approx(probs)


def test_predict_without_class_names_says_so_and_numbers_the_classes(untrained, shared, capsys, tmp_path):
    path = tmp_path / "nameless.pt"
    model = zoo.load(checkpoint_path=untrained)
    assert model.classes is None
    model.save(path)
    code, printed, err = run(capsys, "predict", "--checkpoint", str(path), "--video",
                             str(shared / "videos" / "pysot_bag.avi"), "--top", "3")
    assert code == 0 and "records no class names" in err and err.count("\n") == 1
    assert len(printed.splitlines()) == 4 and "class " in printed


def test_a_checkpoint_trained_on_split_1_is_scored_on_split_1_only(fitted, small_ucf101, tmp_path, capsys):
    argv = ["benchmark", "ucf101", "--checkpoint", str(fitted), "--root", str(small_ucf101), "--clips", "2",
            "--workers", "0"]
    code, _, err = run(capsys, *argv, "--splits", "1", "2", "--out", str(tmp_path / "a"))
    assert code == 2 and err.count("\n") == 1 and "trained on split 1" in err and str(fitted) in err
    assert run(capsys, *argv, "--splits", "1", "--out", str(tmp_path / "b"))[0] == 0
    code, printed, _ = run(capsys, *argv, "--splits", "1", "2", "--mixed-splits", "--out", str(tmp_path / "c"))
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert code == 0 and report["mixed_splits"] is True and "splits 2 were scored" in report["note"]
    assert "note:" in printed


def one_error(capsys, *argv: str) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("zoo: error: ") and err.count("\n") == 1, err
    return err


def test_bad_input_is_one_line(small_ucf101, untrained, tmp_path, capsys):
    five = tmp_path / "five.pt"
    zoo.create_model("clip_tiny", num_classes=5, clip_sampling=SAMPLING).save(five)
    common = ["--root", str(small_ucf101), "--out", str(tmp_path / "x"), "--workers", "0", "--clips", "2"]
    err = one_error(capsys, "benchmark", "ucf101", "--checkpoint", str(five), *common)
    assert str(five) in err and "5 classes" in err and "has 7" in err
    err = one_error(capsys, "benchmark", "ucf101", "--checkpoint", str(untrained), "--splits", "1", "4", *common)
    assert "--splits" in err and "'4'" in err
    broken = tmp_path / "broken"
    shutil.copytree(small_ucf101, broken)
    rel = (broken / "ucfTrainTestlist" / "testlist02.txt").read_text().split()[3]
    (broken / rel).write_bytes(b"not a video at all" * 10)
    err = one_error(capsys, "benchmark", "ucf101", "--checkpoint", str(untrained), "--root", str(broken),
                    "--splits", "2", "--out", str(tmp_path / "y"), "--workers", "0")
    assert str(broken / rel) in err
    err = one_error(capsys, "predict", "--checkpoint", str(untrained), "--video", str(broken / rel))
    assert str(broken / rel) in err


def test_hmdb51_layout_is_benchmarked_too(small_ucf101, untrained, tmp_path, capsys):
    """The synthetic videos in HMDB51's layout (split files with 1 = train, 2 = test)."""
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    classes, train = read_action_split("ucf101", small_ucf101, 1, True)
    _, test = read_action_split("ucf101", small_ucf101, 1, False)
    for label, action in enumerate(classes):
        (root / action.lower()).mkdir()
        rows = []
        for items, mark in ((train, 1), (test, 2)):
            for rel, lab in items:
                if lab == label:
                    name = Path(rel).name
                    shutil.copy(small_ucf101 / rel, root / action.lower() / name)
                    rows.append(f"{name} {mark} \n")
        (splits / f"{action.lower()}_test_split1.txt").write_text("".join(rows))
    # HMDB51 numbers its actions in sorted order; the untrained model has no names, so only the count is checked
    code, printed, _ = run(capsys, "benchmark", "hmdb51", "--checkpoint", str(untrained), "--root", str(root),
                           "--splits", "1", "--out", str(tmp_path / "bench"), "--clips", "2", "--workers", "0")
    assert code == 0 and "hmdb51" in printed
    assert json.loads((tmp_path / "bench" / "report.json").read_text())["splits"]["1"]["num_videos"] == 14


def tiny_finetune_config(folder: Path) -> Path:
    """configs/o3n_tiny_finetune_synthetic.yaml cut to a few batches of one epoch."""
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" /
                             "o3n_tiny_finetune_synthetic.yaml").read_text())
    config["trainer"].update(max_epochs=1, limit_train_batches=2, limit_val_batches=1, log_every_n_steps=1,
                             enable_progress_bar=False)
    config["model"]["init_args"].update(fc_dim=32)
    config["data"]["init_args"].update(batch_size=4, num_workers=0, test_clips=2, train_fraction=1.0)
    path = folder / "finetune.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("protocol", ["finetune", "linear"])
def test_self_supervised_protocol_fits_each_split_then_scores_it(small_ucf101, tmp_path, capsys, protocol):
    from zoo.o3n import OddOneOut

    torch.manual_seed(0)
    ssl = OddOneOut(branch="tiny", width=16, fc_dim=32, dropout=0.0, encoding="stack_of_differences")
    ssl_path = ssl.save(tmp_path / "o3n.pt")
    out = tmp_path / "protocol"
    argv = ["benchmark", "ucf101", "--pretrained", str(ssl_path), "--protocol", protocol, "--config",
            str(tiny_finetune_config(tmp_path)), "--root", str(small_ucf101), "--splits", "1", "2", "--out", str(out),
            "--clips", "2", "--workers", "0"]
    code, printed, _ = run(capsys, *argv)
    assert code == 0 and "mean" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["mixed_splits"] is False
    for k in (1, 2):
        result = report["splits"][str(k)]
        assert result["checkpoint"]["trained_split"] == k
        assert Path(result["checkpoint"]["path"]).parent.parent.parent.name == f"split{k}"
        fitted = zoo.load(checkpoint_path=result["checkpoint"]["path"])
        same = all(torch.equal(a, b) for a, b in zip(fitted.branch.state_dict().values(),
                                                     ssl.branch.state_dict().values()))
        assert same == (protocol == "linear")  # linear: the self-supervised features are kept as they are
        assert fitted.classes == CLASSES
    done = (out / protocol / "split1" / "done.json").stat().st_mtime_ns
    code, _, err = run(capsys, *argv)  # resumed: nothing fitted again, the same report
    assert code == 0 and "resumed: splits 1, 2" in err
    assert (out / protocol / "split1" / "done.json").stat().st_mtime_ns == done
    assert json.loads((out / "report.json").read_text()) == report
    other = OddOneOut(branch="tiny", width=16, fc_dim=32, dropout=0.0, encoding="stack_of_differences")
    other.save(tmp_path / "other.pt")
    argv[argv.index(str(ssl_path))] = str(tmp_path / "other.pt")
    err = one_error(capsys, *argv)
    assert "pretrained_sha256" in err
