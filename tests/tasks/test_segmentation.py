"""Segmentation: a folder of scenes (images/ and masks/) trains a U-Net; every door (the run, the
command line's PNG masks on either backend, the exported runtime, the service) gives the same
masks; the scores and the Dice loss have the values they should; bad masks are refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

import layerforge as lf
from layerforge import runtime
from layerforge.cli import app
from layerforge.data.scenes import CLASSES, scenes
from layerforge.errors import DataError, OutputError
from layerforge.metrics import segmentation_scores
from layerforge.serving import create_app
from layerforge.training import losses


def _write_scenes(root, count: int, seed: int, size: int = 32) -> None:
    pictures, masks = scenes(count, size=size, seed=seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (picture, mask) in enumerate(zip(pictures, masks)):
        Image.fromarray((picture.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"{i}.png")
    (root / "classes.json").write_text(json.dumps(list(CLASSES)), encoding="utf-8")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    _write_scenes(root / "train", 400, seed=0)
    _write_scenes(root / "new", 6, seed=1)
    return root


@pytest.fixture(scope="module")
def run(folders, tmp_path_factory):
    spec = {"name": "scenes", "data": {"path": str(folders / "train"), "split": {"val": 0.1, "test": 0.15}},
            "model": {"type": "unet", "channels": [16, 32]},
            "train": {"epochs": 12, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.005}}}
    found = lf.train(spec, runs_dir=tmp_path_factory.mktemp("runs"), progress=False)
    found.export()
    return found


def test_a_folder_of_scenes_trains_a_unet_to_class_its_pixels(run):
    assert run.manifest.task == "segmentation" and run.manifest.inputs.kind == "image"
    assert run.task.classes == list(CLASSES)
    test = run.metrics["test"]
    assert test["pixel_accuracy"] >= 0.85 and test["mean_iou"] >= 0.4, test
    assert "intersection over union" in (run.path / "report.html").read_text()


def test_every_door_gives_the_same_masks(run, folders, tmp_path):
    masks = run.predict(folders / "new")
    assert masks.shape == (6, 32, 32) and masks.dtype == np.int64
    table = run.predict_table(folders / "new")
    assert list(table.columns) == ["file", *[f"pixels_{c}" for c in CLASSES]]
    assert table["file"].tolist() == [f"{i}.png" for i in range(6)]
    np.testing.assert_array_equal(table["pixels_circle"], (masks == 1).sum(axis=(1, 2)))
    scores = run.evaluate(folders / "new")  # the folder's masks are the labels
    assert set(scores) >= {"mean_iou", "dice", "pixel_accuracy", "loss"}

    exported = runtime.load(run.path / "export")
    np.testing.assert_array_equal(exported.predict(str(folders / "new")), masks)
    for backend in ("torch", "onnx"):
        out = tmp_path / f"masks-{backend}"
        result = CliRunner().invoke(app, ["predict", str(run.path), str(folders / "new"), "--out", str(out),
                                          "--backend", backend])
        assert result.exit_code == 0, result.output
        written = np.stack([np.asarray(Image.open(out / f"{i}.png")) for i in range(6)])
        np.testing.assert_array_equal(written, masks)
    again = CliRunner().invoke(app, ["predict", str(run.path), str(folders / "new"), "--out", str(tmp_path / "masks-torch")])
    assert again.exit_code != 0 and "is not an empty folder" in again.output
    pixels = [np.asarray(Image.open(folders / "new" / "images" / f"{i}.png")).transpose(2, 0, 1) / 255 for i in (0, 1)]
    for backend in ("torch", "onnx"):
        with TestClient(create_app([f"m={run.path}"], backend=backend)) as client:
            answered = client.post("/v1/models/m/predict", json={"rows": [p.tolist() for p in pixels]})
            assert answered.status_code == 200, answered.text
            assert [a["prediction"] for a in answered.json()["predictions"]] == masks[:2].tolist()


def test_the_scores_and_the_dice_loss_are_what_they_should_be():
    true = np.array([[[0, 1, 1], [2, 2, 0]]])
    found = segmentation_scores(true, true, 3)
    assert found["mean_iou"] == found["dice"] == found["pixel_accuracy"] == 1.0
    answered = np.array([[[0, 1, 0], [2, 1, 0]]])
    found = segmentation_scores(answered, true, 3)
    # class 0: 2 of 3 (union 3); class 1: 1 of 3; class 2: 1 of 2
    assert found["mean_iou"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3)
    assert found["dice"] == pytest.approx((2 * 1 / 4 + 2 * 1 / 3) / 2)  # classes 1 and 2
    assert found["pixel_accuracy"] == pytest.approx(4 / 6)
    target = torch.tensor(true)
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    assert float(losses.get("dice", "segmentation")(perfect, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.get("dice", "segmentation")(-perfect, target)) > 0.75  # (smoothed by 1 pixel)


def test_bad_scenes_are_refused_by_name(folders, tmp_path):
    base = {"model": {"type": "unet", "channels": [8, 16]}, "train": {"epochs": 1, "report": False}}
    _write_scenes(tmp_path / "a", 4, seed=2)
    (tmp_path / "a" / "masks" / "3.png").unlink()
    with pytest.raises(DataError, match=r"3\.png: not found; every picture in images/ needs its mask"):
        lf.train({"data": {"path": str(tmp_path / "a")}, **base}, runs_dir=tmp_path / "runs")
    _write_scenes(tmp_path / "b", 4, seed=2)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "b" / "masks" / "2.png")
    with pytest.raises(DataError, match=r"2\.png: a mask is a PNG of class indices"):
        lf.train({"data": {"path": str(tmp_path / "b")}, **base}, runs_dir=tmp_path / "runs")
    _write_scenes(tmp_path / "c", 4, seed=2)
    (tmp_path / "c" / "classes.json").write_text('["background", "circle"]', encoding="utf-8")
    with pytest.raises(DataError, match=r"a mask holds class 3, but classes\.json names 2 classes"):
        lf.train({"data": {"path": str(tmp_path / "c")}, **base}, runs_dir=tmp_path / "runs")
    with pytest.raises(lf.SpecError, match="task 'segmentation' needs model type unet"):
        lf.load_spec({"data": {"dataset": "shapes"}, "task": "segmentation", "model": {"type": "cnn"}})
    with pytest.raises(OutputError, match="two pictures would both write"):
        from layerforge.codecs.masks import write_masks

        write_masks(tmp_path / "twice", np.zeros((2, 4, 4), np.uint8), ["a.png", "a.jpg"])


def test_augmentation_moves_each_mask_with_its_picture():
    from layerforge.data.augment import Augment

    torch.manual_seed(0)
    pictures, masks = scenes(8, size=32, seed=3)
    x = torch.as_tensor(pictures)
    y = torch.as_tensor(masks.astype(np.int64))
    marked = x.clone()
    marked[:, 0] = (y > 0).float()  # a channel that says where the shapes are
    augment = Augment(flip=True, shift=4, rotate=20, noise=0.0, zoom=0.2)
    augment.moves_targets = "masks"
    moved, moved_masks = augment.pair(marked, y)
    assert moved_masks.dtype == torch.int64 and set(moved_masks.unique().tolist()) <= {0, 1, 2, 3}
    agree = ((moved[:, 0] > 0.5) == (moved_masks > 0)).float().mean()
    assert agree > 0.97  # the marked pixels went where their classes went (edges blend a little)
    assert not torch.equal(moved_masks, y)
    assert Augment.from_spec(None) is None


def test_an_attack_lowers_the_mean_iou_of_the_perturbed_pictures(run):
    found = lf.attack(run, eps=[0.0, 0.05], steps=3)
    clean, attacked = found.points[0]["pgd"], found.points[1]["pgd"]
    assert clean == pytest.approx(run.metrics["test"]["mean_iou"], rel=1e-6)
    assert attacked < clean - 0.05


def test_cross_validation_counts_each_folds_answered_pixels(tmp_path):
    pytest.importorskip("skimage")
    spec = {"name": "coins", "data": {"dataset": "coins", "split": {"val": 0.1}},
            "model": {"type": "unet", "channels": [8, 16]}, "train": {"epochs": 1, "report": False}}
    found = lf.cross_validate(spec, folds=2, runs_dir=tmp_path)
    import pandas as pd

    oof = pd.read_csv(found.path / "oof.csv")
    assert list(oof.columns) == ["fold", "row", "pixels_background", "pixels_coin"]
    assert (oof["pixels_background"] + oof["pixels_coin"] == 64 * 64).all()
    assert len(oof) == 197 - 32  # every crop outside the fixed test part, once


def test_class_weights_weigh_each_class_in_the_pixel_losses():
    target = torch.tensor([[[0, 0, 0], [0, 1, 2]]])
    outputs = torch.randn(1, 3, 2, 3, generator=torch.Generator().manual_seed(0))
    for name in ("cross_entropy", "dice", "dice_ce"):
        plain = float(losses.get(name, "segmentation")(outputs, target))
        even = float(losses.get(name, "segmentation", {"class_weights": [2.0, 2.0, 2.0]})(outputs, target))
        tilted = float(losses.get(name, "segmentation", {"class_weights": [0.1, 1.0, 5.0]})(outputs, target))
        assert even == pytest.approx(plain, rel=1e-5) and tilted != pytest.approx(plain, rel=1e-3)
        with pytest.raises(lf.SpecError, match="gives 2 weights, but the outputs have 3 classes"):
            losses.get(name, "segmentation", {"class_weights": [1.0, 2.0]})(outputs, target)
    spec = lf.load_spec({"data": {"dataset": "shapes"}, "model": {"type": "unet"},
                         "train": {"loss": {"name": "dice_ce", "class_weights": [0.5, 1, 1, 2]}}})
    assert spec.train.loss.params() == {"class_weights": [0.5, 1.0, 1.0, 2.0]}


def test_a_table_of_picture_and_mask_files_trains_and_predicts(folders, tmp_path):
    import pandas as pd

    rows = pd.DataFrame({"picture": [f"images/{i}.png" for i in range(60)],
                         "truth": [f"masks/{i}.png" for i in range(60)]})
    rows.to_csv(folders / "train" / "scenes.csv", index=False)
    spec = {"data": {"path": str(folders / "train" / "scenes.csv"), "kind": "masks", "source": "picture",
                     "target": "truth"},
            "model": {"type": "unet", "channels": [8, 16]}, "train": {"epochs": 1, "report": False}}
    run = lf.train(spec, runs_dir=tmp_path, progress=False)
    assert run.task.classes == list(CLASSES) and run.manifest.preprocessing.column == "picture"
    rows.head(3).to_csv(folders / "train" / "three.csv", index=False)
    table = run.predict_table(folders / "train" / "three.csv")
    assert table["file"].tolist() == ["0.png", "1.png", "2.png"]
    assert set(run.evaluate(folders / "train" / "three.csv")) >= {"mean_iou", "loss"}
    with pytest.raises(DataError, match="data.source: .* no column 'image'|missing column.*: image"):
        lf.train({**spec, "data": {**spec["data"], "source": None}}, runs_dir=tmp_path)


def test_a_unet_takes_a_pretrained_encoder_and_keeps_it_in_the_run(tmp_path):
    transformers = pytest.importorskip("transformers")
    from layerforge import runtime
    from layerforge.models import Inputs, build_model

    torch.manual_seed(0)
    config = transformers.ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                       layer_type="basic")
    transformers.ResNetModel(config).save_pretrained(tmp_path / "resnet")
    saved = transformers.ResNetModel.from_pretrained(tmp_path / "resnet").state_dict()
    built = build_model({"type": "unet", "encoder": str(tmp_path / "resnet")},
                        Inputs(kind="image", channels=3, height=30, width=44), 4)
    assert all(torch.equal(built.backbone.state_dict()[k], v) for k, v in saved.items())  # its weights, not new ones
    assert built(torch.zeros(2, 3, 30, 44)).shape == (2, 4, 30, 44)  # any size: padded to the strides, cut back
    spec = {"name": "encoded", "data": {"dataset": "shapes", "split": {"val": 0.1, "test": 0.1}},
            "model": {"type": "unet", "encoder": str(tmp_path / "resnet"), "freeze": ["backbone.*"]},
            "train": {"epochs": 1, "report": False}}
    run = lf.train(spec, runs_dir=tmp_path / "runs", progress=False)
    trained = lf.load_run(run.path).model.backbone.state_dict()
    assert all(torch.equal(trained[k], v) for k, v in saved.items() if "running" not in k and "batches" not in k)
    (tmp_path / "resnet" / "model.safetensors").unlink()  # the run rebuilds from its own files
    x = np.random.default_rng(0).random((3, 3, 64, 64)).astype(np.float32)
    again = lf.load_run(run.path).predict(x)
    run.export()
    np.testing.assert_array_equal(runtime.load(run.path / "export").predict(x), again)
    with pytest.raises(lf.SpecError, match="a pretrained encoder's stages are the levels; remove channels"):
        lf.load_spec({**spec, "model": {"type": "unet", "encoder": "somewhere", "channels": [8, 16]}})
    with pytest.raises(lf.SpecError, match="model.encoder: .*elsewhere is not a directory"):
        lf.train({**spec, "model": {"type": "unet", "encoder": str(tmp_path / "elsewhere")}}, runs_dir=tmp_path)
