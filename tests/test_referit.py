"""ReferIt as the official lang_seg_model reads it: the real annotation files (../shared/data/referit), one real
image with its region's mask (../shared/data/lang, the official demo's 38100), the synthetic writer's round trip
through the datamodule and a training step, and bad files named in one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from datamodules.referit import (
    ReferItAnnotations,
    ReferItDataModule,
    ReferItRegions,
    read_box_file,
    read_mask,
    write_mask,
)
from datamodules.synthetic import SynthConfig, synthesize
from zoo.errors import DatasetError
from zoo.nn.text import Vocabulary

FILES = ("referit_query_trainval.json", "referit_query_test.json", "referit_bbox.json", "referit_imsize.json",
         "referit_trainval_imlist.txt", "referit_test_imlist.txt", "vocabulary_referit.txt")


@pytest.fixture(scope="module")
def referit(request) -> ReferItAnnotations:
    shared = request.getfixturevalue("shared") / "referit"
    if not all((shared / f).is_file() for f in FILES):
        pytest.skip(f"the real ReferIt annotation files are not in {shared}")
    return ReferItAnnotations(shared.parent, shared)


def test_real_annotation_files(referit):
    trainval, test = referit.queries("trainval"), referit.queries("test")
    assert (len(trainval), sum(map(len, trainval.values()))) == (49_515, 59_976)
    assert (len(test), sum(map(len, test.values()))) == (49_730, 60_105)
    assert len({r.split("_", 1)[0] for r in trainval}) == 9_995 and len({r.split("_", 1)[0] for r in test}) == 9_994
    lists = referit.image_list("trainval"), referit.image_list("test")
    assert [len(x) for x in lists] == [10_000, 10_000] and not set(lists[0]) & set(lists[1])
    boxes, sizes = referit.boxes(), referit.sizes()
    assert len(boxes) == 99_610 and len(sizes) == 20_000
    assert set(boxes) >= set(trainval) | set(test) and len(set(boxes) - set(trainval) - set(test)) == 365
    for region, (x1, y1, x2, y2) in boxes.items():
        w, h = sizes[region.split("_", 1)[0] + ".jpg"]
        assert 0 <= x1 <= x2 < w and 0 <= y1 <= y2 < h, region
    vocab = referit.vocabulary()
    assert len(vocab) == 8_803 and vocab.words[:5] == ["<pad>", "<go>", "<eos>", "<unk>", "a"]
    lines = [w.strip() for w in (referit.folder / "vocabulary_referit.txt").read_text().splitlines()]
    assert vocab.words == lines  # index = line - 1, as load_vocab_dict_from_file
    # preprocess_sentence: tokens lower-cased, a final "." dropped, unknown words <unk> (3), left-padded to 20; the
    # split keeps ", " whole, which the (stripped) file lacks: <unk>, as in the official code
    ids = vocab.encode("Sky above the BRIDGE, zzqx.")
    assert ids == [0] * 14 + [lines.index(w) for w in ("sky", "above", "the", "bridge")] + [3, 3]
    assert vocab.encode("the sky,bridge")[-3:] == [lines.index(w) for w in ("sky", ",", "bridge")]


def real_sample_root(shared, tmp_path):  # noqa: ANN001, ANN201
    """A ReferIt folder holding the one real image of ../shared/data/lang, 38100 (a test image), and its region
    38100_2 ("Sky above the bridge"), the demo's mask written as the .mat the official reader expects."""
    lang = shared / "lang"
    if not all((lang / f).is_file() for f in ("38100.jpg", "38100_mask.jpg", "38100_box.txt")):
        pytest.skip(f"the real ReferIt sample 38100 is not in {lang}")
    root = tmp_path / "referit"
    (root / "referit-dataset" / "images").mkdir(parents=True)
    shutil.copy(lang / "38100.jpg", root / "referit-dataset" / "images")
    write_mask(root / "referit-dataset" / "mask" / "38100_2.mat", read_mask(lang / "38100_mask.jpg"))
    return root


def test_one_real_sample(referit, shared, tmp_path):
    root = real_sample_root(shared, tmp_path)
    lang = shared / "lang"
    mask = read_mask(lang / "38100_mask.jpg")
    assert mask.shape == (360, 480) and 0.4 < mask.mean() < 0.5
    np.testing.assert_array_equal(read_mask(root / "referit-dataset" / "mask" / "38100_2.mat"), mask)
    gt = referit.boxes()["38100_2"]
    assert gt.tolist() == [0, 0, 479, 229]
    demo = read_box_file(lang / "38100_box.txt") - 1  # the demo's box, 1-based
    assert demo.tolist() == [0, 0, 473, 215]
    overlap = (demo[2] + 1) * (demo[3] + 1) / ((gt[2] + 1) * (gt[3] + 1))  # demo box inside the region's box
    assert overlap > 0.9
    ys, xs = np.nonzero(mask)
    assert xs.min() == 0 and xs.max() == 479 and ys.min() == 0 and abs(ys.max() - gt[3]) <= 8

    regions = ReferItRegions(root, "test", annotations=referit.folder, allow_missing=True)
    assert [r for r, _ in regions.items] == ["38100_2"] and len(regions.missing) == 49_729
    item = regions[0]
    assert item["sentence"] == "Sky above the bridge" and item["image"].shape == (3, 512, 512)
    # resize_and_pad: 480 x 360 -> 512 x 384 between 64 rows of zeros above and below
    assert item["image"][:, :64].eq(0).all() and item["image"][:, 448:].eq(0).all()
    assert item["image"][:, 64:448].float().mean() > 20
    scale = 512 / 480
    np.testing.assert_allclose(item["box"].numpy(), [0, 64, 512, 64 + 230 * scale], rtol=1e-5)
    rows = np.nonzero(item["mask"].numpy().any(1))[0]
    assert rows.min() == 64 and abs(rows.max() - (64 + 225 * scale)) <= 2 and item["mask"][:, 0].any()
    with pytest.raises(DatasetError, match=r"referit-dataset/images/\d+\.jpg: not found \(region \d+_\d+ of "
                                           r".*referit_query_test\.json"):
        ReferItRegions(root, "test", annotations=referit.folder)

    import zoo

    dm = ReferItDataModule(str(root), annotations=str(referit.folder))
    net = zoo.create_model("lingual_tiny", vocab=dm.vocabulary(), input_size=512)
    tokens = net.tokens([item["sentence"]])[0].tolist()
    words = net.vocab.words
    assert tokens[:16] == [0] * 16 and [words[i] for i in tokens[16:]] == ["sky", "above", "the", "bridge"]
    assert words[:4] == ["<pad>", "<go>", "<eos>", "<unk>"]


@pytest.fixture(scope="module")
def synth_referit(tmp_path_factory):
    cfg = SynthConfig(height=72, width=96, num_frames=2, min_size=6, max_size=12)
    return synthesize("referit", tmp_path_factory.mktemp("referit") / "referit", num_videos=12, seed=3, cfg=cfg)


def test_synthetic_writer_round_trip(synth_referit, tmp_path):
    from datamodules.synthetic import generate_videos

    cfg = SynthConfig(height=72, width=96, num_frames=2, min_size=6, max_size=12)
    videos = list(generate_videos(12, 3, cfg))
    ann = ReferItAnnotations(synth_referit)
    assert ann.folder == synth_referit / "data"
    trainval, test = ann.queries("trainval"), ann.queries("test")
    assert ann.image_list("trainval") == [str(i) for i in range(1, 7)]
    assert ann.image_list("test") == [str(i) for i in range(7, 13)]
    visible = [sum(o.visible[0] and o.masks[0].any() for o in v.objects) for v in videos]
    assert len(trainval) == sum(visible[:6]) and len(test) == sum(visible[6:])
    assert trainval["1_1"][0].startswith(videos[0].target.sentence)  # the target is region 1
    vocab = ann.vocabulary()
    assert vocab.words[:4] == ["<pad>", "<go>", "<eos>", "<unk>"] and vocab.words[4] == "the"

    regions = ReferItRegions(synth_referit, "trainval", input_size=96)
    assert len(regions) == len(trainval)
    for i in range(len(regions)):
        item = regions[i]
        region = item["region"]
        image, k = (int(v) for v in region.split("_"))
        obj = [o for o in videos[image - 1].objects if o.visible[0] and o.masks[0].any()][k - 1]
        x, y, w, h = obj.boxes[0]
        # 72 x 96 -> 72 x 96 in the 96 x 96 input, 12 rows of padding above
        np.testing.assert_allclose(item["box"].numpy(), [x, y + 12, x + w, y + h + 12])
        placed = np.zeros((96, 96), bool)
        placed[12:84] = obj.masks[0]
        np.testing.assert_array_equal(item["mask"].numpy() > 0, placed)
    boxed = ReferItRegions(synth_referit, "trainval", input_size=96, target="box")[0]
    assert "mask" not in boxed and torch.equal(boxed["box"], regions[0]["box"])


def test_lingual_network_trains_on_referit_with_its_vocabulary(synth_referit, tmp_path):
    import zoo
    from zoo.trainer import build_trainer

    dm = ReferItDataModule(str(synth_referit), input_size=64, batch_size=4, num_workers=0, val_limit=4)
    model = zoo.create_model("lingual_tiny", input_size=64)
    trainer = build_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, loggers="", logger=False,
                            default_root_dir=str(tmp_path), enable_progress_bar=False)
    trainer.fit(model, dm)
    assert model.vocab.words == Vocabulary.from_file(synth_referit / "data" / "vocabulary_referit.txt").words
    loaded = zoo.load(checkpoint_path=trainer.checkpoint_callback.last_model_path)
    assert loaded.vocab.words == model.vocab.words and torch.isfinite(loaded.text.embed.weight).all()
    assert len(dm.val_set) == 4


def _one_line(excinfo) -> str:  # noqa: ANN001
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_bad_files_are_named_in_one_line(synth_referit, tmp_path):
    root = tmp_path / "referit"
    shutil.copytree(synth_referit, root)
    data = root / "data"

    query = data / "referit_query_trainval.json"
    good = query.read_text()
    query.write_text(good[:-5])
    with pytest.raises(DatasetError, match=r"referit_query_trainval\.json:\d+: not JSON") as e:
        ReferItRegions(root, "trainval")
    _one_line(e)
    query.write_text(json.dumps({"7": ["a region without its image's number"]}))
    with pytest.raises(DatasetError, match=r"referit_query_trainval\.json: region '7' is not <image>_<k>") as e:
        ReferItRegions(root, "trainval")
    _one_line(e)
    query.write_text(json.dumps({"9_1": ["the red circle"]}))
    with pytest.raises(DatasetError, match=r"referit_query_trainval\.json: region 9_1's image 9 is not in .*"
                                           r"referit_trainval_imlist\.txt"):
        ReferItRegions(root, "trainval")
    query.write_text(good)

    boxes = json.loads((data / "referit_bbox.json").read_text())
    boxes["1_1"] = [30, 5, 10, 8]
    (data / "referit_bbox.json").write_text(json.dumps(boxes))
    with pytest.raises(DatasetError, match=r"referit_bbox\.json: region '1_1': expected \[x1, y1, x2, y2\]") as e:
        ReferItRegions(root, "trainval")
    _one_line(e)
    shutil.copy(synth_referit / "data" / "referit_bbox.json", data / "referit_bbox.json")

    vocab = data / "vocabulary_referit.txt"
    words = vocab.read_text().splitlines()
    vocab.write_text("\n".join(words[1:]) + "\n")
    with pytest.raises(DatasetError, match=r"vocabulary_referit\.txt: a vocabulary file starts with <pad>") as e:
        ReferItDataModule(str(root)).vocabulary()
    _one_line(e)
    vocab.write_text("\n".join(words + ["the"]) + "\n")
    with pytest.raises(DatasetError, match=rf"vocabulary_referit\.txt:{len(words) + 1}: 'the' repeats line 5"):
        ReferItDataModule(str(root)).vocabulary()

    (root / "referit-dataset" / "mask" / "1_1.mat").write_bytes(b"not a mat file")
    with pytest.raises(DatasetError, match=r"mask/1_1\.mat: cannot read ReferIt mask") as e:
        ReferItRegions(root, "trainval")[0]
    _one_line(e)
    write_mask(root / "referit-dataset" / "mask" / "1_1.mat", np.ones((5, 5), bool))
    with pytest.raises(DatasetError, match=r"mask/1_1\.mat: mask is 5 x 5, its image 96 x 72"):
        ReferItRegions(root, "trainval")[0]
    (root / "referit-dataset" / "mask" / "1_1.mat").unlink()
    with pytest.raises(DatasetError, match=r"mask/1_1\.mat: not found \(region 1_1 of"):
        ReferItRegions(root, "trainval")
    assert len(ReferItRegions(root, "trainval", target="box")) == len(ReferItRegions(synth_referit, "trainval"))



@pytest.mark.parametrize("name", ["lingual_referit.yaml", "lingual_referit_highres.yaml"])
def test_referit_configs_are_the_released_recipe(name, capsys, monkeypatch):
    """configs/lingual_referit*.yaml parse with ``zoo fit``'s LightningCLI and train the released network: every
    model argument is ``lingual_vgg16``'s default but the stage's own (the weights' source, the upsampling, lr)."""
    import inspect
    import sys
    from pathlib import Path

    import yaml

    from zoo.cli import main
    from zoo.lang_tracker.lingual import FAITHFUL, LingualSpecification

    monkeypatch.setattr(sys, "argv", ["zoo"])
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(Path(__file__).resolve().parents[1] / "configs" / name), "--print_config"])
    assert stop.value.code in (0, None)
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["data"]["class_path"] == "datamodules.referit.ReferItDataModule"
    assert cfg["model"]["class_path"] == "zoo.lang_tracker.LingualSpecification"
    args = cfg["model"]["init_args"]
    defaults = {k: p.default for k, p in inspect.signature(LingualSpecification.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    released = {**defaults, **FAITHFUL}
    first = name == "lingual_referit.yaml"
    stage = dict(pretrained_backbone=first, upsample="bilinear" if first else "deconv", lr=1e-3 if first else 1e-4,
                 init_weights=None)
    assert {k: v for k, v in args.items() if k not in stage} == {k: released[k] for k in args if k not in stage}
    assert {k: args[k] for k in stage} == stage


def test_lingual_network_trained_on_referit_picks_the_described_object(tmp_path):
    """The lingual network trained on (synthetic) ReferIt, every object of an image a region with a description
    that singles it out, as the official lang_seg_model trains: on held-out images it finds the described object,
    and finds it by reading: given the description of another object in the same image, it boxes the target far
    less often."""
    import pytorch_lightning as pl

    import zoo
    from datamodules.video import read_rgb
    from zoo.metrics.otb import iou
    from zoo.trainer import build_trainer

    cfg = SynthConfig(height=96, width=128, num_frames=2, min_size=10, max_size=18)
    root = synthesize("referit", tmp_path / "referit", num_videos=300, seed=7, cfg=cfg)
    pl.seed_everything(0)
    dm = ReferItDataModule(str(root), input_size=128, batch_size=16, num_workers=2, val_limit=0)
    model = zoo.create_model("lingual_tiny")
    trainer = build_trainer(max_epochs=12, loggers="", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, default_root_dir=str(tmp_path))
    trainer.fit(model, dm)
    model.eval()
    test = ReferItRegions(root, "test", input_size=128, target="box")
    by_image: dict[str, list[tuple[str, str]]] = {}
    for region, sentence in test.items:
        by_image.setdefault(region.split("_", 1)[0], []).append((region, sentence))
    frames, truth, own, other = [], [], [], []
    for image, regions in by_image.items():
        if len(regions) < 2:
            continue
        frame = read_rgb(test.image_dir / f"{image}.jpg")
        for k, (region, sentence) in enumerate(regions):
            x1, y1, x2, y2 = test.boxes[region]
            frames.append(frame)
            truth.append([x1, y1, x2 - x1 + 1, y2 - y1 + 1])
            own.append(sentence)
            other.append(regions[(k + 1) % len(regions)][1])
    truth = torch.tensor(truth, dtype=torch.float64)
    found = iou(torch.from_numpy(model.ground(frames, own)), truth).mean().item()
    swapped = iou(torch.from_numpy(model.ground(frames, other)), truth).mean().item()
    torch.manual_seed(0)
    untrained = zoo.create_model("lingual_tiny", vocab=model.hparams.vocab).eval()
    before = iou(torch.from_numpy(untrained.ground(frames, own)), truth).mean().item()
    print(f"ReferIt grounding on {len(frames)} held-out regions: mean IoU {found:.3f}, with the description of "
          f"another object of the same image {swapped:.3f}, untrained {before:.3f}")
    assert found > 0.3 and found > swapped + 0.15 and found > before + 0.15
