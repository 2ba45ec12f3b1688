"""The ``zoo`` command on a table of bad inputs: each ends with exit code 2, exactly one line on stderr,
``zoo: error: ...``, that names the file or option at fault, and writes nothing to the output folder."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from datamodules.synthetic import SynthConfig, synthesize

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "configs" / "demo_clip_tiny.yaml")
LINGUAL = str(ROOT / "configs" / "lingual_tiny_synthetic.yaml")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Small good datasets and the bad files the table points at."""
    base = tmp_path_factory.mktemp("bad")
    cfg = SynthConfig(height=48, width=64, num_frames=6, min_size=6, max_size=10)
    otb = synthesize("otb", base / "otb", num_videos=2, seed=1, cfg=cfg)
    lang = synthesize("otb99lang", base / "lang", num_videos=4, seed=1, cfg=cfg)
    small = SynthConfig(height=32, width=40, num_frames=8, min_size=5, max_size=8)
    ucf = synthesize("ucf101", base / "ucf", num_videos=14, seed=1, cfg=small)
    nan_otb = synthesize("otb", base / "nan_otb", num_videos=1, seed=1, cfg=cfg)
    gt = nan_otb / "Synth0000" / "groundtruth_rect.txt"
    gt.write_text("nan,nan,nan,nan\n" + "".join(gt.read_text().splitlines(keepends=True)[1:]))
    bad_bytes_otb = synthesize("otb", base / "bytes_otb", num_videos=1, seed=1, cfg=cfg)
    gt = bad_bytes_otb / "Synth0000" / "groundtruth_rect.txt"
    gt.write_bytes(gt.read_bytes().replace(b"\n", b"\xff\n", 2))
    bad_ucf = synthesize("ucf101", base / "bad_ucf", num_videos=14, seed=1,
                         cfg=SynthConfig(height=32, width=40, num_frames=8, min_size=5, max_size=8))
    class_index = bad_ucf / "ucfTrainTestlist" / "classInd.txt"
    class_index.write_bytes(class_index.read_bytes().replace(b"Linear", b"Lin\xe9ar"))
    # result folders: one whose times file holds text
    results = base / "results" / "r"
    (results / "times").mkdir(parents=True)
    for seq in ("Synth0000", "Synth0001"):
        (results / f"{seq}.txt").write_text((otb / seq / "groundtruth_rect.txt").read_text())
        (results / "times" / f"{seq}_time.txt").write_text("abc\n" * 6)
    clash = base / "clash" / "results" / "identity_tracker"
    clash.mkdir(parents=True)
    (clash / "run.json").write_text('{"model": {\n  "class": oops\n}')
    (clash / "Synth0000.txt").write_text("1,1,5,5\n" * 6)
    random_bytes = base / "random.ckpt"
    random_bytes.write_bytes(os.urandom(4096))
    text_ckpt = base / "text.ckpt"
    text_ckpt.write_text("this is not a checkpoint\n")
    unknown_kw = base / "unknown_kw.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"widht": 3, "num_classes": 7},
                "zoo": {"class_path": "zoo.baseline.model.ClipClassifier"}}, unknown_kw)
    index = {}
    for key, text in {
        "metrics": "metrics: 0.5\n",
        "sha": "sha256: 1234567890\n",
        "args": "args: [1, 2]\n",
    }.items():
        folder = base / f"index_{key}"
        folder.mkdir()
        entry = ("name: clip_tiny.bad\narch: clip_tiny\nurl: https://example.org/x.ckpt\n"
                 f"sha256: {'a' * 64}\nsize: 10\ndataset: d\nmetrics: {{acc: 0.5}}\nprotocol: p\nlicense: MIT\n"
                 "provenance: test\n")
        lines = [line for line in entry.splitlines(keepends=True) if not line.startswith(text.split(":")[0] + ":")]
        (folder / "clip_tiny.bad.yaml").write_text("".join(lines) + text)
        index[key] = folder
    return {"otb": otb, "lang": lang, "ucf": ucf, "nan_otb": nan_otb, "bytes_otb": bad_bytes_otb,
            "bad_ucf": bad_ucf, "results": results, "clash": clash.parent.parent, "random": random_bytes,
            "text": text_ckpt,
            "unknown_kw": unknown_kw, **{f"index_{k}": v for k, v in index.items()}}


def _bench(*args: str) -> list[str]:
    return ["benchmark", "otb", "--subset", "folders", "--out", "{out}", *args]


def _fit(config: str, *args: str) -> list[str]:
    return ["fit", "--config", config, "--trainer.default_root_dir={out}", "--trainer.max_epochs=1", *args]


# (case id, argv with {data keys} and {out}, what the one line must contain, extra environment)
CASES = [
    ("unknown tag", _bench("--model", "sint_tiny.nosuchtag", "--root", "{otb}"), "sint_tiny.nosuchtag", {}),
    ("not a tracker", _bench("--model", "clip_tiny", "--root", "{otb}"), "not a tracker", {}),
    ("flow without flow", _bench("--model", "identity_tracker", "--flow", "--root", "{otb}"), "--flow", {}),
    ("devices foo", _bench("--model", "identity_tracker", "--devices", "foo", "--root", "{otb}"), "--devices", {}),
    ("batch size 0", _bench("--model", "identity_tracker", "--batch-size", "0", "--root", "{otb}"), "--batch-size", {}),
    ("missing sequence", _bench("--model", "identity_tracker", "--sequences", "Nope", "--root", "{otb}"), "Nope", {}),
    ("missing table sequence", ["benchmark", "otb", "--model", "identity_tracker", "--sequences", "Basketball",
                                "--root", "{otb}", "--out", "{out}"], "Basketball", {}),
    ("missing otb99lang sequence", ["benchmark", "otb99lang", "--model", "identity_tracker", "--subset", "folders",
                                    "--sequences", "Nope", "--root", "{lang}", "--out", "{out}"], "Nope", {}),
    ("no root", _bench("--model", "identity_tracker", "--root", "/no/such/otb"), "/no/such/otb", {}),
    ("unknown benchmark", ["benchmark", "vot2018", "--out", "{out}"], "vot2018", {}),
    ("nan ground truth", _bench("--model", "identity_tracker", "--root", "{nan_otb}"),
     "Synth0000/groundtruth_rect.txt:1", {}),
    ("non-utf8 ground truth", _bench("--model", "identity_tracker", "--root", "{bytes_otb}"),
     "Synth0000/groundtruth_rect.txt:1", {}),
    ("corrupt run.json", ["benchmark", "otb", "--model", "identity_tracker", "--root", "{otb}", "--subset", "folders",
                          "--out", "{clash}"], "identity_tracker/run.json:2", {}),
    ("times file abc", ["benchmark", "otb", "--results", "{results}", "--root", "{otb}", "--subset", "folders",
                        "--out", "{out}"], "Synth0000_time.txt:1", {}),
    ("random bytes checkpoint", _bench("--checkpoint", "{random}", "--root", "{otb}"), "random.ckpt: not a readable "
     "checkpoint, corrupt", {}),
    ("text checkpoint", _bench("--checkpoint", "{text}", "--root", "{otb}"), "text.ckpt", {}),
    ("unknown hyper-parameter", _bench("--checkpoint", "{unknown_kw}", "--root", "{otb}"), "widht", {}),
    ("index metrics 0.5", ["info", "clip_tiny.bad"], "clip_tiny.bad.yaml", {"ZOO_INDEX_PATH": "{index_metrics}"}),
    ("index digit sha256", ["info", "clip_tiny.bad"], "sha256", {"ZOO_INDEX_PATH": "{index_sha}"}),
    ("index args list", ["info", "clip_tiny.bad"], "args", {"ZOO_INDEX_PATH": "{index_args}"}),
    ("synth size 0x0", ["synth", "--format", "otb", "--out", "{out}", "--size", "0x0"], "--size", {}),
    ("synth videos -3", ["synth", "--format", "otb", "--out", "{out}", "--videos", "-3"], "--videos", {}),
    ("synth frames 0", ["synth", "--format", "otb", "--out", "{out}", "--frames", "0"], "--frames", {}),
    ("fit ckpt_path missing", _fit(DEMO, "--data.init_args.root={ucf}", "--ckpt_path={out}/../nope.ckpt"),
     "nope.ckpt", {}),
    ("fit ckpt_path text", _fit(DEMO, "--data.init_args.root={ucf}", "--ckpt_path={text}"), "text.ckpt", {}),
    ("fit ImageNet offline", _fit(DEMO, "--data.init_args.root={ucf}", "--model.init_args.backbone=resnet18",
                                  "--model.init_args.pretrained_backbone=true"), "ZOO_OFFLINE", {"ZOO_OFFLINE": "1"}),
    ("fit init_weights missing", _fit(LINGUAL, "--data.init_args.root={lang}",
                                      "--model.init_args.init_weights={out}/../first_stage.ckpt"),
     "first_stage.ckpt: checkpoint file not found", {}),
    ("fit bad argument combination", _fit(DEMO, "--data.init_args.root={ucf}", "--model.init_args.modality=sound"),
     "modality must be", {}),
    ("fit non-utf8 list", _fit(DEMO, "--data.init_args.root={bad_ucf}"), "classInd.txt:1", {}),
    ("fit no training batches", _fit(DEMO, "--data.init_args.root={ucf}", "--data.init_args.batch_size=1000"),
     "no training batches", {}),
    ("fit negative save interval", _fit(DEMO, "--data.init_args.root={ucf}", "--save_every_n_steps=-1"),
     "--save_every_n_steps", {}),
    ("list no match", ["list", "nosuchmodel"], "nosuchmodel", {}),
]


# these also run as a real process (the rest run ``zoo.cli.main`` in this process, which is much faster)
IN_A_PROCESS = {"unknown tag", "nan ground truth", "fit ckpt_path text", "synth size 0x0"}


def _in_process(args: list[str], env: dict[str, str], cwd: Path, monkeypatch, capfd) -> tuple[int, str]:
    """``zoo ARGS`` through ``zoo.cli.main``, with warnings logged to stderr as the real command's are."""
    from zoo.cli import main

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["zoo"])
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    capfd.readouterr()
    try:
        code = main(args)
    finally:
        logging.getLogger().removeHandler(handler)
    return code, capfd.readouterr().err


@pytest.mark.parametrize("case, argv, expected, env", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(data, tmp_path, monkeypatch, capfd, case, argv, expected, env):
    out = tmp_path / "out"
    fill = {**{k: str(v) for k, v in data.items()}, "out": str(out)}
    args = [a.format(**fill) for a in argv]
    env = {k: v.format(**fill) for k, v in env.items()}
    if case in IN_A_PROCESS:
        run = subprocess.run([sys.executable, "-m", "zoo.cli", *args], cwd=tmp_path, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT), **env}, timeout=300)
        code, stderr = run.returncode, run.stderr
    else:
        code, stderr = _in_process(args, env, tmp_path, monkeypatch, capfd)
    lines = stderr.strip().splitlines()
    assert code == 2, (code, stderr[-3000:])
    assert len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith("zoo: error: ") and expected in lines[0], lines[0]
    assert "Given value" not in lines[0] and "Traceback" not in stderr
    assert not out.exists() or not any(out.iterdir()), sorted(str(p) for p in out.rglob("*"))
