"""Detection: a table of boxes (or a COCO file) trains a CenterNet; every door (the run, the
command line on either backend, the exported runtime, the service) gives the same boxes; the mAP
is COCO's own to the last digit; the decoding, the loss and the augmentation do what they say;
bad boxes are refused by name."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

import layerforge as lf
from layerforge import runtime
from layerforge.cli import app
from layerforge.codecs.boxes import coco_boxes, table_boxes
from layerforge.data.augment import Augment
from layerforge.data.scenes import SHAPES, drawn
from layerforge.decodings import Boxes
from layerforge.errors import DataError
from layerforge.metrics import box_iou, detection_scores
from layerforge.serving import create_app
from layerforge.tasks.detection import centernet_loss, padded_boxes


def _write_boxes(root, count: int, seed: int, size: int = 48) -> pd.DataFrame:
    """Scenes as PNG files under root/images and a table of their boxes, root/boxes.csv."""
    pictures, _, boxes = drawn(count, size=size, seed=seed)
    (root / "images").mkdir(parents=True)
    rows = []
    for i, (picture, found) in enumerate(zip(pictures, boxes)):
        Image.fromarray((picture.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(root / "images" / f"{i}.png")
        rows += [{"image": f"images/{i}.png", "x_min": b[0], "y_min": b[1], "x_max": b[2], "y_max": b[3],
                  "label": SHAPES[int(b[4])]} for b in found]
    table = pd.DataFrame(rows)
    table.to_csv(root / "boxes.csv", index=False)
    return table


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("boxes")
    _write_boxes(root / "train", 400, seed=0)
    _write_boxes(root / "new", 6, seed=1)
    return root


@pytest.fixture(scope="module")
def run(folders, tmp_path_factory):
    spec = {"name": "boxes", "task": "detection",
            "data": {"path": str(folders / "train" / "boxes.csv"), "kind": "boxes", "split": {"val": 0.1, "test": 0.15},
                     "augment": {"flip": True, "shift": 4}},
            "model": {"type": "centernet", "channels": [16, 32, 32], "stride": 4, "head_channels": 16},
            "train": {"epochs": 12, "batch_size": 16, "optimizer": {"name": "adamw", "lr": 0.005}}}
    found = lf.train(spec, runs_dir=tmp_path_factory.mktemp("runs"), progress=False)
    found.export()
    return found


def test_a_table_of_boxes_trains_a_centernet_to_find_them(run):
    assert run.manifest.task == "detection" and run.task.classes == list(SHAPES)
    test = run.metrics["test"]
    assert test["map_50"] >= 0.3 and 0 < test["map"] <= test["map_50"], test
    assert "average precision" in (run.path / "report.html").read_text()


def test_every_door_gives_the_same_boxes(run, folders):
    table = run.predict_table(folders / "new" / "boxes.csv")
    assert list(table.columns) == ["picture", "x_min", "y_min", "x_max", "y_max", "label", "score"]
    assert set(table["picture"]) <= {f"images/{i}.png" for i in range(6)} and len(table)
    assert (table["score"] >= 0.3).all() and set(table["label"]) <= set(SHAPES)
    found = run.predict(folders / "new" / "boxes.csv")
    assert len(found) == 6 and all(b.shape[1] == 6 for b in found)
    assert sum(len(b) for b in found) == len(table)
    scores = run.evaluate(folders / "new" / "boxes.csv")  # the table's boxes are the labels
    assert set(scores) >= {"map", "map_50", "map_75", "loss"}

    exported = runtime.load(run.path / "export")
    theirs = exported.predict(str(folders / "new" / "boxes.csv"))
    for ours, other in zip(found, theirs):
        assert ours.shape == other.shape
        np.testing.assert_allclose(other[:, :4], ours[:, :4], atol=0.01)  # within a hundredth of a pixel
        np.testing.assert_allclose(other[:, 5], ours[:, 5], atol=1e-4)
        np.testing.assert_array_equal(other[:, 4], ours[:, 4])
    for backend in ("torch", "onnx"):
        result = CliRunner().invoke(app, ["predict", str(run.path), str(folders / "new" / "images"),
                                          "--backend", backend])
        assert result.exit_code == 0, result.output
        printed = pd.read_csv(io.StringIO(result.output))
        assert printed["picture"].tolist() == [f"{i}.png" for i in range(6) for _ in found[i]]
        np.testing.assert_allclose(printed["x_min"], np.concatenate(found)[:, 0], atol=0.01)
    drawn_by = {}
    for backend in ("torch", "onnx"):  # the pictures with their boxes drawn, on request
        out = folders / f"drawn-{backend}"
        result = CliRunner().invoke(app, ["predict", str(run.path), str(folders / "new" / "images"), "--out", str(out),
                                          "--backend", backend])
        assert result.exit_code == 0 and "6 pictures" in result.output, result.output
        drawn_by[backend] = np.stack([np.asarray(Image.open(out / f"{i}.png")) for i in range(6)])
    np.testing.assert_array_equal(drawn_by["torch"], drawn_by["onnx"])
    original = np.asarray(Image.open(folders / "new" / "images" / "0.png"))
    assert drawn_by["torch"].shape == (6, 48, 48, 3) and (drawn_by["torch"][0] != original).any() == bool(len(found[0]))
    picture = original.transpose(2, 0, 1) / 255
    for backend in ("torch", "onnx"):
        with TestClient(create_app([f"m={run.path}"], backend=backend)) as client:
            answered = client.post("/v1/models/m/predict", json={"rows": [picture.tolist()]})
            assert answered.status_code == 200, answered.text
            boxes = answered.json()["predictions"][0]["prediction"]
            assert [b["label"] for b in boxes] == [SHAPES[int(k)] for k in found[0][:, 4]]
            assert [b["x_min"] for b in boxes] == pytest.approx(found[0][:, 0], abs=0.01)
            assert [b["score"] for b in boxes] == pytest.approx(found[0][:, 5], abs=1e-4)
    bigger = np.zeros((3, 50, 48))
    with TestClient(create_app([f"m={run.path}"], backend="onnx")) as client:
        refused = client.post("/v1/models/m/predict", json={"rows": [bigger.tolist()]})
        assert refused.status_code == 422


def test_the_map_is_cocos_own():
    pycocotools = pytest.importorskip("pycocotools.cocoeval")
    from pycocotools.coco import COCO

    rng = np.random.default_rng(4)
    true, found = [], []
    for _ in range(40):
        corners = rng.uniform(0, 50, (rng.integers(0, 6), 2))
        truth = np.column_stack([corners, corners + rng.uniform(3, 20, (len(corners), 2)),
                                 rng.integers(0, 3, len(corners))])
        answered = [[*(box[:4] + rng.normal(0, 1.0, 4).clip(-1.4, 1.4)), box[4] if rng.uniform() < 0.9 else 2,
                     rng.uniform()] for box in truth if rng.uniform() < 0.85]
        for _ in range(rng.integers(0, 4)):
            corner = rng.uniform(0, 50, 2)
            answered.append([*corner, *(corner + rng.uniform(3, 20, 2)), rng.integers(0, 3), rng.uniform()])
        true.append(truth.reshape(-1, 5))
        found.append(np.array(answered).reshape(-1, 6))
    ours = detection_scores(found, true, 3)
    record = {"images": [{"id": i} for i in range(len(true))], "categories": [{"id": k} for k in range(3)],
              "annotations": [{"id": n + 1, "image_id": i, "category_id": int(b[4]), "iscrowd": 0,
                               "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1])}
                              for n, (i, b) in enumerate((i, b) for i, t in enumerate(true) for b in t)]}
    answers = [{"image_id": i, "category_id": int(b[4]), "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                "score": float(b[5])} for i, f in enumerate(found) for b in f]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = record
        coco.createIndex()
        scoring = pycocotools.COCOeval(coco, coco.loadRes(answers), "bbox")
        scoring.evaluate()
        scoring.accumulate()
        scoring.summarize()
    assert ours["map"] == pytest.approx(scoring.stats[0], abs=1e-12)
    assert ours["map_50"] == pytest.approx(scoring.stats[1], abs=1e-12)
    assert ours["map_75"] == pytest.approx(scoring.stats[2], abs=1e-12)
    assert 0.2 < ours["map"] < 0.9  # a mixed case, neither perfect nor empty
    assert detection_scores([true[0][:, [0, 1, 2, 3, 4, 4]] * [1, 1, 1, 1, 1, 0] + [0, 0, 0, 0, 0, 1]], [true[0]],
                            3)["map"] == 1.0


def test_boxes_are_read_from_the_heatmaps_peaks_and_suppressed_within_a_class():
    classes, size = ["a", "b"], [32, 32]
    outputs = np.full((1, 6, 8, 8), -10.0)
    outputs[0, 0, 2, 3] = 3.0  # class a, cell (row 2, column 3): probability 0.953
    outputs[0, 0, 2, 4] = 1.0  # a neighbour lower than the peak: not a box
    outputs[0, 1, 6, 1] = 0.0  # class b at 0.5
    outputs[0, 2:4] = np.log(8.0)  # every box 8 x 8 pixels
    outputs[0, 4:6] = 0.0  # centres in the middle of their cells
    found = Boxes(classes, size).detections(outputs)[0]
    np.testing.assert_allclose(found, [[10, 6, 18, 14, 0, 1 / (1 + np.exp(-3))], [2, 22, 10, 30, 1, 0.5]])
    assert len(Boxes(classes, size, min_score=0.6).detections(outputs)[0]) == 1
    outputs[0, 0, 2, 5] = 2.0  # a second peak of class a, centred 8 pixels right of the first
    outputs[0, 0, 2, 4] = -10.0
    outputs[0, 2:4] = np.log(16.0)  # boxes 16 x 16: the two overlap by a third
    assert len(Boxes(classes, size, overlap=0.5).detections(outputs)[0]) == 3
    kept = Boxes(classes, size, overlap=0.3).detections(outputs)[0]
    assert kept[:, 4].tolist() == [0, 1] and kept[0, 5] == pytest.approx(1 / (1 + np.exp(-3)))
    assert box_iou(np.array([[10, 6, 18, 14]]), np.array([[14, 6, 22, 14]]))[0, 0] == pytest.approx(1 / 3)


def test_the_loss_falls_to_its_floor_for_maps_that_answer_the_boxes():
    boxes = torch.tensor([[[4.0, 4.0, 12.0, 12.0, 1.0], [0, 0, 0, 0, -1]], [[0, 0, 0, 0, -1], [0, 0, 0, 0, -1]]])
    outputs = torch.full((2, 6, 4, 4), -12.0)
    outputs[0, 1, 2, 2] = 12.0  # class 1's centre (8, 8) is cell (2, 2) at stride 4
    outputs[0, 2:4, 2, 2] = float(np.log(8.0))
    outputs[0, 4:6, 2, 2] = 0.0  # the centre at the cell's corner: offset 0 wanted, 0.5 given
    near = float(centernet_loss(outputs, boxes, [16, 16], 2))
    assert near == pytest.approx(0.5, abs=0.01)  # the centre's place: 0.5 from where it is, in x and in y
    outputs[0, 4:6, 2, 2] = -30.0  # offset 0
    assert float(centernet_loss(outputs, boxes, [16, 16], 2)) < 1e-3
    empty = torch.full((2, 2, 5), -1.0)
    assert float(centernet_loss(torch.zeros(2, 6, 4, 4), empty, [16, 16], 2)) > 0
    with pytest.raises(DataError, match="picture 2 has a box of class 5; this run knows classes 0 to 1"):
        padded_boxes([np.zeros((0, 5)), np.array([[0, 0, 4, 4, 5]])], 2)
    with pytest.raises(DataError, match=r"picture 1 has a box \[4.0, 0.0, 4.0, 4.0\] whose x_max"):
        padded_boxes([np.array([[4, 0, 4, 4, 0]])], 2)


def test_flips_shifts_and_zooms_move_each_box_with_its_picture():
    torch.manual_seed(0)
    pictures, _, boxes = drawn(16, size=32, seed=3)
    x = torch.zeros(16, 1, 32, 32)
    y = torch.as_tensor(padded_boxes(boxes, 3))
    for i, found in enumerate(boxes):  # a picture lit inside its first box only
        x0, y0, x1, y1 = found[0, :4].astype(int)
        x[i, 0, y0:y1, x0:x1] = 1.0
    for asked, within in (({"flip": True, "shift": 6}, 1e-6), ({"flip": True, "zoom": 0.3}, 1.01)):
        spec = lf.load_spec({"data": {"dataset": "shapes_boxes", "augment": asked}, "task": "detection",
                             "model": {"type": "centernet"}})
        moved, moved_boxes = Augment.from_spec(spec.data.augment, "boxes").pair(x, y)
        assert not torch.equal(moved_boxes, y)
        checked = 0
        for picture, found in zip(moved, moved_boxes):
            lit = torch.nonzero(picture[0] > 0.5)
            if found[0, 4] < 0 or not len(lit):  # moved out of sight
                continue
            seen = [lit[:, 1].min(), lit[:, 0].min(), lit[:, 1].max() + 1, lit[:, 0].max() + 1]
            assert [float(v) for v in seen] == pytest.approx(found[0, :4].tolist(), abs=within), asked
            checked += 1
        assert checked >= 10  # (a zoomed picture's edges are blended: within a pixel)
    with pytest.raises(lf.SpecError, match="boxes do not turn with their pictures"):
        lf.load_spec({"data": {"dataset": "shapes_boxes", "augment": {"rotate": 10}}, "task": "detection",
                      "model": {"type": "centernet"}})


def test_a_coco_file_is_read_as_the_table_is(folders, tmp_path):
    table = pd.read_csv(folders / "new" / "boxes.csv")
    files = sorted(set(table["image"]), key=lambda f: int(f.split("/")[1].split(".")[0]))
    record = {"images": [{"id": 10 + i, "file_name": f.split("/")[1]} for i, f in enumerate(files)],
              "categories": [{"id": 7, "name": "circle"}, {"id": 8, "name": "square"}, {"id": 9, "name": "triangle"}],
              "annotations": [{"id": n, "image_id": 10 + files.index(row.image), "category_id": 7 + SHAPES.index(row.label),
                               "bbox": [row.x_min, row.y_min, row.x_max - row.x_min, row.y_max - row.y_min], "iscrowd": 0}
                              for n, row in enumerate(table.itertuples())]}
    (folders / "new" / "coco.json").write_text(json.dumps(record), encoding="utf-8")
    pictures, boxes, classes = coco_boxes(folders / "new" / "coco.json")
    theirs, their_boxes, _ = table_boxes(folders / "new" / "boxes.csv", "image", "label", classes)
    assert classes == list(SHAPES) and pictures == theirs
    for a, b in zip(boxes, their_boxes):
        np.testing.assert_allclose(a, b)
    record["annotations"][0]["category_id"] = 99
    (tmp_path / "images").mkdir()
    (tmp_path / "bad.json").write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(DataError, match="picture '0.png' .* not found beside the file or in images/"):
        coco_boxes(tmp_path / "bad.json")


def test_bad_boxes_are_refused_by_name(folders, tmp_path):
    table = pd.read_csv(folders / "new" / "boxes.csv")
    bad = table.astype({"x_max": object})
    bad.loc[2, "x_max"] = "wide"
    bad.to_csv(folders / "new" / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"row 3 \(line 4 of bad.csv\): column x_max holds 'wide', not a number of pixels"):
        table_boxes(folders / "new" / "bad.csv", "image", "label")
    bad = table.copy()
    bad.loc[1, "label"] = "hexagon"
    bad.to_csv(folders / "new" / "bad.csv", index=False)
    with pytest.raises(DataError, match="label 'hexagon' is not a class this run knows"):
        table_boxes(folders / "new" / "bad.csv", "image", "label", list(SHAPES))
    with pytest.raises(lf.SpecError, match="stride 8 needs at least 4 levels of channels"):
        lf.load_spec({"data": {"dataset": "shapes_boxes"}, "model": {"type": "centernet", "channels": [8, 8],
                                                                     "stride": 8}})
    with pytest.raises(lf.SpecError, match="train.loss: loss 'mse' does not suit task 'detection'"):
        lf.load_spec({"data": {"dataset": "shapes_boxes"}, "model": {"type": "centernet", "channels": [8, 8, 8]},
                      "train": {"epochs": 1, "loss": "mse"}})


def test_a_boxs_saliency_lies_on_the_box(run, folders, tmp_path):
    pytest.importorskip("captum")
    from layerforge.explanations import explain, write_out

    found = explain(run, folders / "new" / "boxes.csv", method="saliency")
    drawn = Image.open(write_out(found, tmp_path / "saliency.png"))
    assert drawn.size[1] > drawn.size[0]  # the mean, then each of the 6 pictures' own maps, one under another
    boxes = run.predict(folders / "new" / "boxes.csv")
    heat = np.abs(found.attributions).sum(axis=1)  # (pictures, H, W)
    assert heat.shape == (6, 48, 48) and len(found.targets) == 6
    inside = []
    for picture, answered, said in zip(heat, boxes, found.targets):
        best = max(answered, key=lambda b: b[5]) if len(answered) else None
        if best is None:
            continue
        assert said.startswith(f"{SHAPES[int(best[4])]} at ({best[0]:.0f}, {best[1]:.0f}")
        x0, y0, x1, y1 = (np.array(best[:4]) + [-4, -4, 4, 4]).clip(0, 48).astype(int)
        inside.append(picture[y0:y1, x0:x1].sum() / picture.sum())
    assert inside and np.median(inside) > 0.6, inside  # the box (and 4 pixels around it) holds most of it
    with pytest.raises(DataError, match="--target: hexagon is not a class of this run"):
        explain(run, folders / "new" / "boxes.csv", method="saliency", target="hexagon")


def test_cross_validation_names_the_source_row_of_each_box(tmp_path):
    pytest.importorskip("skimage")
    spec = {"name": "coins", "task": "detection",
            "data": {"dataset": "coins_boxes", "split": {"val": 0.1}, "decoding": {"min_score": 0.01}},
            "model": {"type": "centernet", "channels": [8, 16, 16], "head_channels": 8},
            "train": {"epochs": 1, "report": False}}
    found = lf.cross_validate(spec, folds=2, runs_dir=tmp_path)
    oof = pd.read_csv(found.path / "oof.csv")
    assert list(oof.columns) == ["fold", "picture", "x_min", "y_min", "x_max", "y_max", "label", "score"]
    test = set(range(197 - 32, 197))  # the fixed test crops, held out of every fold
    assert len(oof) and not set(oof["picture"]) & test and oof["picture"].between(0, 196).all()
    assert set(oof["label"]) == {"coin"} and (oof["score"] >= 0.01).all()
    assert oof.groupby(["fold", "picture"]).size().max() <= Boxes.MOST
