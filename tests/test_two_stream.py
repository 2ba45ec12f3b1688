"""Two-stream ConvNets (Simonyan & Zisserman 2014): CNN-M-2048 at the paper's size, flow stacking and mean flow
subtraction, crops and flips, cross-modality initialisation, late fusion, the data, bad input, and learning on the
synthetic UCF101 whose classes are motions."""

from __future__ import annotations

import importlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import yaml
from torch import nn

import zoo
from datamodules.flow_images import compute_flow, flow_image, image_to_flow, write_jpeg
from datamodules.two_stream import TwoStreamDataModule, TwoStreamVideos, resize_flow, time_points
from datamodules.video import open_video
from zoo.errors import DatasetError
from zoo.nn.backbones import cross_modality_conv
from zoo.trainer import build_trainer
from zoo.two_stream import TwoStream, average_softmax
from zoo.two_stream.inputs import eval_crops, hflip, random_crops, stack_flow, subtract_mean_flow
from zoo.two_stream.networks import stream_net

ROOT = Path(__file__).resolve().parents[1]


def _inputs(b=1, k=1, h=256, w=340, length=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (b, k, 3, h, w), generator=g, dtype=torch.uint8)
    flow = torch.randn(b, k, length, 2, h, w, generator=g) * 3
    return frames, flow


# ----------------------------------------------------------------------------------------- the paper's network


def test_cnnm_2048_at_the_faithful_size():
    model = zoo.create_model("two_stream_cnnm", num_classes=101)
    for name, in_channels, norms in (("spatial", 3, 2), ("temporal", 20, 1)):
        net = getattr(model, name)[0]
        convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
        assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
            (in_channels, 96, 7, 2), (96, 256, 5, 2), (256, 512, 3, 1), (512, 512, 3, 1), (512, 512, 3, 1)]
        # the temporal net has no second normalisation layer (Sec. 5)
        assert sum(isinstance(m, nn.LocalResponseNorm) for m in net.features) == norms
        pools = [m for m in net.features if isinstance(m, nn.MaxPool2d)]
        assert [(p.kernel_size, p.stride) for p in pools] == [(3, 2)] * 3
        assert (net.full6[1].out_features, net.full7[0].out_features) == (4096, 2048)
        assert getattr(model, name)[1].out_features == 101
        x = torch.zeros(2, in_channels, 224, 224)
        assert net.features(x).shape == (2, 512, 6, 6)
    assert model.spatial[0].full6[3].p == 0.5 and model.temporal[0].full6[3].p == 0.9
    frames, flow = _inputs()
    with torch.no_grad():
        model.eval()
        assert model(frames, flow).shape == (1, 10, 101)  # 10 crops per sampled frame
        model.train()
        assert model(frames, flow).shape == (1, 1, 101)
    with pytest.raises(ValueError, match="224 x 224"):
        model.spatial[0](torch.zeros(1, 3, 200, 200))


# ----------------------------------------------------------------------------------------- inputs by hand


def test_flow_stack_interleaves_x_and_y_and_subtracts_each_fields_mean():
    length, h, w = 3, 4, 5
    fields = torch.zeros(length, 2, h, w)
    ramp = torch.arange(h * w, dtype=torch.float32).view(h, w)
    for k in range(length):
        fields[k, 0] = 10 * (k + 1) + ramp  # x of field k
        fields[k, 1] = -100 * (k + 1) + 2 * ramp  # y of field k
    stack = stack_flow(fields)
    assert stack.shape == (6, h, w)
    for k in range(length):  # Eq. 1: channel 2k-1 (1-based) is x of field k, channel 2k its y
        assert torch.equal(stack[2 * k], fields[k, 0]) and torch.equal(stack[2 * k + 1], fields[k, 1])
    centred = subtract_mean_flow(stack)
    mean_ramp = float(ramp.mean())
    for k in range(length):
        assert torch.allclose(centred[2 * k], ramp - mean_ramp)
        assert torch.allclose(centred[2 * k + 1], 2 * (ramp - mean_ramp))
    # the model does the same from (B, K, L, 2, H, W) fields, on the whole field before cropping
    model = TwoStream(num_classes=3, streams="temporal", temporal_backbone="tiny", flow_length=length,
                      crop_size=4, test_crops=1).eval()
    x = model.temporal_input(fields[None, None])
    assert x.shape == (1, 6, 4, 4)
    assert torch.allclose(x[0], centred[:, :, 0:4])  # the centre crop of 4 x 5 starts at column (5 - 4) // 2 = 0
    off = TwoStream(num_classes=3, streams="temporal", temporal_backbone="tiny", flow_length=length, crop_size=4,
                    test_crops=1, mean_flow_subtraction=False).eval()
    assert torch.allclose(off.temporal_input(fields[None, None])[0], stack[:, :, 0:4])


def test_flipping_a_flow_stack_negates_x_and_ten_crops_are_corners_centre_and_flips():
    stack = torch.arange(2 * 2 * 4 * 6, dtype=torch.float32).view(1, 4, 4, 6)
    flipped = hflip(stack, flow=True)
    assert torch.equal(flipped[0, 0], -stack[0, 0].flip(-1)) and torch.equal(flipped[0, 1], stack[0, 1].flip(-1))
    assert torch.equal(flipped[0, 2], -stack[0, 2].flip(-1)) and torch.equal(flipped[0, 3], stack[0, 3].flip(-1))
    crops = eval_crops(stack, 2, 10, flow=True)
    assert crops.shape == (1, 10, 4, 2, 2)
    s = stack[0]
    expected = [s[:, :2, :2], s[:, :2, 4:], s[:, 2:, :2], s[:, 2:, 4:], s[:, 1:3, 2:4]]
    for i, e in enumerate(expected):
        assert torch.equal(crops[0, i], e)
        assert torch.equal(crops[0, 5 + i], hflip(e, flow=True))
    rgb = torch.rand(3, 3, 8, 8)
    assert torch.equal(eval_crops(rgb, 4, 10)[:, 5], eval_crops(rgb, 4, 10)[:, 0].flip(-1))  # RGB: a plain mirror
    torch.manual_seed(0)
    out = random_crops(stack.expand(20, -1, -1, -1), 2, flow=True)
    windows = {tuple(c.flatten().tolist()) for c in stack[0].unfold(1, 2, 1).unfold(2, 2, 1).permute(1, 2, 0, 3, 4)
               .reshape(-1, 4, 2, 2)}
    windows |= {tuple(hflip(torch.tensor(w).view(4, 2, 2), flow=True).flatten().tolist()) for w in windows}
    assert all(tuple(c.flatten().tolist()) in windows for c in out)


def test_cross_modality_initialisation_by_hand():
    rgb = nn.Conv2d(3, 8, 7, stride=2)
    flow = cross_modality_conv(rgb, 20)
    assert flow.weight.shape == (8, 20, 7, 7) and flow.stride == (2, 2)
    mean = (rgb.weight[:, 0] + rgb.weight[:, 1] + rgb.weight[:, 2]) / 3
    for c in range(20):
        assert torch.allclose(flow.weight[:, c], mean)
    assert torch.equal(flow.bias, rgb.bias)
    net = stream_net("cnnm", 20, 0.9, norm2=False, cross_modality=True)
    w = net.features[0].weight
    assert w.shape[1] == 20 and torch.equal(w, w[:, :1].expand_as(w))
    model = TwoStream(num_classes=5, streams="temporal", temporal_backbone="resnet18", temporal_init="cross_modality")
    w = model.temporal[0].conv1.weight
    assert w.shape == (64, 20, 7, 7) and torch.equal(w, w[:, :1].expand_as(w))


def test_fusion_averages_the_streams_softmax_scores():
    a, b = torch.randn(2, 4, 7), torch.randn(2, 4, 7) * 3
    fused = average_softmax([a, b])
    assert torch.allclose(fused.exp(), (a.softmax(-1) + b.softmax(-1)) / 2, atol=1e-6)
    assert torch.allclose(fused.softmax(-1), fused.exp(), atol=1e-6)
    model = zoo.create_model("two_stream_tiny", num_classes=7).eval()
    frames, flow = _inputs(b=2, k=3, h=64, w=80)
    with torch.no_grad():
        streams = model.stream_logits(frames, flow)
        assert streams["spatial"].shape == (2, 30, 7)  # 3 frames x 10 crops
        by_hand = (streams["spatial"].softmax(-1) + streams["temporal"].softmax(-1)) / 2
        assert torch.allclose(model(frames, flow).exp(), by_hand, atol=1e-6)
        video = model.predict_step({"frames": frames, "flow": flow}, 0)
        assert torch.allclose(video, by_hand.mean(1), atol=1e-6)


# ----------------------------------------------------------------------------------------- data


def test_time_points_and_flow_resizing():
    assert time_points(40, 10, 25, None).tolist() == np.rint(np.linspace(0, 29, 25)).astype(int).tolist()
    rng = np.random.default_rng(0)
    assert all(0 <= time_points(40, 10, 25, rng)[0] <= 29 for _ in range(50))
    assert time_points(5, 10, 3, None).tolist() == [0, 0, 0]
    field = np.ones((10, 20, 2), np.float32) * np.array([2.0, -4.0], np.float32)
    out = resize_flow(field, (5, 40))
    assert out.shape == (5, 40, 2) and np.allclose(out[..., 0], 4.0) and np.allclose(out[..., 1], -2.0)


def test_samples_from_flow_images_match_flow_computed_on_the_fly(synth_ucf101, tmp_path):
    kw = dict(dataset="ucf101", root=synth_ucf101, train=False, flow_length=4, test_frames=3, size=(64, 80))
    live = TwoStreamVideos(**kw)
    rel, label = live.items[0]
    with open_video(synth_ucf101 / rel, size=(64, 80)) as video:
        frames = video.get_frames(np.arange(len(video)))
    folder = tmp_path / "flow" / Path(rel).with_suffix("")
    folder.mkdir(parents=True)
    for i in range(len(frames)):  # as zoo prepare flow: image i is the flow of frames i -> i + 1, the last repeats
        a = min(i, len(frames) - 2)
        write_jpeg(folder / f"{i + 1:05d}.jpg", flow_image(frames[a], frames[a + 1]))
    stored = TwoStreamVideos(**kw, flow_folder=tmp_path / "flow")
    x, y = live[0], stored[0]
    assert x["label"] == y["label"] == label
    assert x["frames"].shape == (3, 3, 64, 80) and torch.equal(x["frames"], y["frames"])
    points = time_points(len(frames), 4, 3, None)
    assert torch.equal(x["frames"], torch.from_numpy(frames[points]).permute(0, 3, 1, 2))
    assert x["flow"].shape == y["flow"].shape == (3, 4, 2, 64, 80)
    by_hand = compute_flow(frames[points[1] + 2], frames[points[1] + 3])  # point 1, field 3
    assert torch.allclose(x["flow"][1, 2].float(), torch.from_numpy(by_hand.transpose(2, 0, 1)), atol=1e-2)
    decoded = image_to_flow(flow_image(frames[points[1] + 2], frames[points[1] + 3]))
    quantised = torch.from_numpy(decoded.transpose(2, 0, 1))
    assert (y["flow"][1, 2].float() - quantised).abs().mean() < 0.05  # JPEG of the 1/16-pixel quantised flow
    only_flow = TwoStreamVideos(**kw, modality="flow")[0]
    assert "frames" not in only_flow and torch.equal(only_flow["flow"], x["flow"])


def test_clip_logits_score_a_clip_as_the_datamodule_sample(synth_ucf101):
    """The benchmark's path (``clip_logits`` on crops of L + 1 frames, flow computed from them) gives the scores of
    the training path (the datamodule's flow, the model's crop) when the crop is the whole frame."""
    pl.seed_everything(0)
    model = zoo.create_model("two_stream_tiny", num_classes=7, crop_size=64, test_crops=1).eval()
    sample = TwoStreamVideos("ucf101", synth_ucf101, train=False, test_frames=1, size=(64, 64))
    rel, _ = sample.items[0]
    item = sample[0]
    with open_video(synth_ucf101 / rel, size=(64, 64)) as video:
        t = int(time_points(len(video), 10, 1, None)[0])
        clip = torch.from_numpy(video.get_frames(np.arange(t, t + 11))).permute(0, 3, 1, 2)[None]
    assert model.eval_clip_spec().frames == 11 and model.frame_size == (64, 64)
    with torch.no_grad():
        expected = model(item["frames"][None], item["flow"][None].float())[:, 0]
        assert torch.allclose(model.clip_logits(clip), expected, atol=1e-2)
    with pytest.raises(ValueError, match="needs clips of 11 frames"):
        model.clip_logits(clip[:, :5])


def test_flow_on_the_models_device_is_tvl1_of_the_same_frames(synth_ucf101, tmp_path):
    """``flow_method="tvl1_torch"``: items carry the grey frame pairs, and the model turns them into the TV-L1 fields
    that ``compute_flow(..., "tvl1_torch")`` gives pair by pair; the Trainer fits and validates on such batches, and
    the benchmark's ``clip_logits`` of a model that recorded the method computes the same flow."""
    kw = dict(dataset="ucf101", root=synth_ucf101, train=False, flow_length=2, test_frames=2, size=(64, 80))
    videos = TwoStreamVideos(**kw, flow_method="tvl1_torch")
    item = videos[0]
    assert "flow" not in item and item["flow_pairs"].shape == (2, 2, 2, 64, 80)
    with open_video(synth_ucf101 / videos.items[0][0], size=(64, 80)) as video:
        frames = video.get_frames(np.arange(len(video)))
    t = int(time_points(len(frames), 2, 2, None)[1])
    model = zoo.create_model("temporal_tiny", num_classes=7, flow_length=2, crop_size=64, test_crops=1).eval()
    fields = model.flow_from_pairs(item["flow_pairs"][None])
    by_hand = compute_flow(frames[t + 1], frames[t + 2], "tvl1_torch").transpose(2, 0, 1)  # point 1, field 2
    assert fields.shape == (1, 2, 2, 2, 64, 80) and fields.abs().max() > 0.5
    assert torch.allclose(fields[0, 1, 1], torch.from_numpy(by_hand), atol=1e-4)

    data = TwoStreamDataModule(str(synth_ucf101), modality="flow", flow_length=2, test_frames=2, size=(64, 80),
                               flow_method="tvl1_torch", batch_size=4, test_batch_size=2, num_workers=0)
    trainer = build_trainer(max_epochs=1, loggers="", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, limit_train_batches=2,
                            limit_val_batches=1, num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    trainer.fit(model.train(), data)
    assert model.sampling["flow_method"] == "tvl1_torch" and "val/video_acc" in trainer.callback_metrics
    clip = torch.from_numpy(frames[t:t + 3]).permute(0, 3, 1, 2)[None, :, :, :, 8:72]  # one 64 x 64 crop
    grey = [cv2.cvtColor(f[:, 8:72], cv2.COLOR_RGB2GRAY) for f in frames[t:t + 3]]
    pairs = torch.from_numpy(np.stack([np.stack(grey[i:i + 2]) for i in range(2)]))[None, None]  # (1, 1, L, 2, ...)
    with torch.no_grad():
        flow = model.eval().flow_from_pairs(pairs)
        assert torch.allclose(model.clip_logits(clip), model(None, flow)[:, 0], atol=1e-4)


def test_bad_input_is_one_clear_line(synth_ucf101, tmp_path):
    with pytest.raises(ValueError, match="no ImageNet weights for 'cnnm'"):
        zoo.create_model("spatial_cnnm", pretrained_backbone=True)
    with pytest.raises(ValueError, match="streams must be one of"):
        TwoStream(streams="both")
    with pytest.raises(ValueError, match="test_crops must be 1"):
        TwoStream(streams="spatial", spatial_backbone="tiny", test_crops=3)
    model = zoo.create_model("temporal_tiny", num_classes=7)
    frames, flow = _inputs(h=64, w=80)
    with pytest.raises(ValueError, match="temporal stream needs 'flow'.*modality flow or rgb\\+flow"):
        model(frames, None)
    with pytest.raises(ValueError, match="flow must be \\(B, K, L=10, 2, H, W\\)"):
        model(None, flow[:, :, :5])
    with pytest.raises(ValueError, match="smaller than the 64 x 64 crop"):
        model(None, flow[..., :40, :40])
    with pytest.raises(DatasetError, match="flow folder not found"):
        TwoStreamVideos("ucf101", synth_ucf101, flow_folder=tmp_path / "none")
    with pytest.raises(ValueError, match="split must be 1, 2 or 3"):
        TwoStreamDataModule(str(synth_ucf101), split=4)


def test_configs_build_and_agree():
    for name in ("two_stream_spatial_ucf101", "two_stream_temporal_ucf101", "two_stream_tiny_synthetic"):
        cfg = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
        model_args = {**cfg["model"]["init_args"], "pretrained_backbone": False}  # nothing downloaded here
        model = _class(cfg["model"])(**model_args)
        data = cfg["data"]["init_args"]
        assert data["flow_length"] == model.hparams.flow_length
        wanted = {"spatial": "rgb", "temporal": "flow", "two_stream": "rgb+flow"}[model.hparams.streams]
        assert data["modality"] == wanted, name
        assert min(data["size"]) >= model.hparams.crop_size


def _class(section: dict):
    module, cls = section["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module), cls)


# ----------------------------------------------------------------------------------------- learning


def test_temporal_stream_beats_spatial_and_fusion_is_at_least_the_better(synth_ucf101, tmp_path):
    """configs/two_stream_tiny_synthetic.yaml on the synthetic UCF101, whose 7 classes are motions (linear,
    bouncing, circular, zig-zag, still, growing, shrinking): one frame shows little of them, 10 flow fields much.
    Video accuracy on the 42 test videos of split 1 (25 frames x 10 crops each)."""
    cfg = yaml.safe_load((ROOT / "configs" / "two_stream_tiny_synthetic.yaml").read_text())
    pl.seed_everything(cfg["seed_everything"], workers=True)
    model = _class(cfg["model"])(**cfg["model"]["init_args"])
    data = _class(cfg["data"])(**{**cfg["data"]["init_args"], "root": str(synth_ucf101)})
    trainer = build_trainer(max_epochs=cfg["trainer"]["max_epochs"], loggers="", logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            check_val_every_n_epoch=cfg["trainer"]["max_epochs"] + 1, num_sanity_val_steps=0,
                            default_root_dir=str(tmp_path))
    trainer.fit(model, data)
    metrics = trainer.validate(model, data, verbose=False)[0]
    assert model.classes == data.class_names and model.sampling["flow_method"] == data.hparams.flow_method
    acc = {k: metrics[f"val/{p}video_acc"] for k, p in (("spatial", "spatial_"), ("temporal", "temporal_"),
                                                           ("fused", ""))}
    print(f"video accuracy on the synthetic UCF101 split 1: {acc}; clip accuracy: "
          f"{ {k: round(v, 3) for k, v in metrics.items() if 'clip_acc' in k} }")
    assert acc["temporal"] >= 2 / 7, acc  # twice chance
    assert acc["temporal"] > acc["spatial"], acc
    assert acc["fused"] >= max(acc["spatial"], acc["temporal"]), acc


def test_two_streams_trained_apart_fuse(tmp_path):
    spatial = zoo.create_model("spatial_tiny", num_classes=7)
    temporal = zoo.create_model("temporal_tiny", num_classes=7)
    spatial.save(tmp_path / "s.ckpt")
    temporal.save(tmp_path / "t.ckpt")
    both = TwoStream.from_checkpoints(tmp_path / "s.ckpt", tmp_path / "t.ckpt")
    frames, flow = _inputs(k=2, h=64, w=80)
    with torch.no_grad():
        s, t = spatial.eval()(frames, None), temporal.eval()(None, flow)
        assert torch.allclose(both(frames, flow).exp(), (s.softmax(-1) + t.softmax(-1)) / 2, atol=1e-6)
    assert F.softmax(both(frames, flow), -1).sum(-1).allclose(torch.ones(1, 20))
