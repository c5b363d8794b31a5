import subprocess
import sys

import pytest

from layerforge import SpecError, load_spec
from layerforge.spec.load import apply_override


def problems(raw):
    with pytest.raises(SpecError) as caught:
        load_spec(raw)
    return caught.value.problems


def test_smallest_spec_fills_every_default():
    spec = load_spec({"data": {"dataset": "iris"}})
    assert spec.model.layers == [128, 64]
    assert spec.train.optimizer.name == "adam" and spec.train.optimizer.lr == 0.001
    assert spec.data.split.val == 0.15 and spec.train.early_stopping is None


def test_three_mistakes_reported_at_once():
    raw = {
        "data": {"dataset": "iris"},
        "model": {"layers": [128, 64, -3]},
        "train": {"optimizer": {"name": "adma"}, "epoch": 30},
    }
    with pytest.raises(SpecError) as caught:
        load_spec(raw)
    message = str(caught.value)
    assert message.startswith("3 problems in the spec")
    assert "model.layers[2]: expected an integer > 0, got -3" in message
    assert "train.optimizer.name: unknown optimizer 'adma' — did you mean 'adam'?" in message
    assert "train: unknown key 'epoch' — did you mean 'epochs'?" in message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"data": {"dataset": "digit"}}, r"data.dataset: unknown dataset 'digit' — did you mean 'digits'\?"),
        ({"data": {"dataset": "iris"}, "model": {"activation": "rleu"}}, r"model.activation: unknown activation 'rleu' — did you mean 'relu'\?"),
        ({"data": {"dataset": "iris"}, "model": {"init": "kaiming_normal"}}, r"model.init: unknown init"),
        ({"data": {"dataset": "iris"}, "model": {"dropout": 1.5}}, r"model.dropout: expected a number < 1, got 1.5"),
        ({"data": {"dataset": "iris"}, "model": {"norm": "group"}}, r"model.norm: expected one of 'none', 'batch' or 'layer', got 'group'"),
        ({"data": {"dataset": "iris"}, "train": {"batch_size": 0}}, r"train.batch_size: expected an integer > 0 or 'full', got 0"),
        ({"data": {"dataset": "iris"}, "train": {"loss": "crossentropy"}}, r"train.loss: unknown loss 'crossentropy' — did you mean 'cross_entropy'\?"),
        ({"data": {"dataset": "iris"}, "train": {"loss": {"name": "mse", "margin": 2}}}, r"'margin' is not a parameter of loss 'mse'"),
        ({"data": {"dataset": "iris"}, "train": {"optimizer": {"name": "adam", "momentum": 0.9}}}, r"train.optimizer.momentum: not a parameter of optimizer 'adam'"),
        ({"data": {"dataset": "iris"}, "train": {"schedule": "cosin"}}, r"train.schedule.name: unknown schedule 'cosin' — did you mean 'cosine'\?"),
        ({"data": {"dataset": "iris"}, "train": {"schedule": {"name": "cosine", "gamma": 0.5}}}, r"train.schedule.gamma: not a parameter of schedule 'cosine'"),
        ({"data": {"dataset": "iris"}, "train": {"epochs": "many"}}, r"train.epochs: expected an integer, got 'many'"),
        ({"data": {"dataset": "iris", "split": {"val": 0.5, "test": 0.5}}}, r"data.split: val \+ test must be below 1"),
        ({"data": {"target": "y"}}, r"data: give exactly one of 'dataset'"),
        ({"data": {"path": "nowhere.csv"}}, r"data.path: file not found"),
        ({"data": {"path": "data.xlsx"}}, r"data.path: expected a .csv, .tsv, .parquet, .npz, .txt or COCO .json file, or a "
                                             r"folder of class folders \(images, or sound clips with data.kind: audio\)"),
        ({"data": {"dataset": "iris"}, "task": "clasification"}, r"task: unknown task 'clasification' — did you mean 'classification'\?"),
        ({"data": {"dataset": "iris"}, "name": "my run!"}, r"name: expected letters, digits"),
        ({"data": {"dataset": "iris"}, "model": {"norm": "batch"}, "train": {"batch_size": 1}}, r"model.norm: batch norm needs batches of at least 2 rows"),
        ({"data": {"dataset": "iris"}, "task": "regression", "train": {"loss": "hinge"}}, r"train.loss: loss 'hinge' does not suit task 'regression'"),
        ({"data": {"dataset": "iris"}, "train": {"early_stopping": {"monitor": "val_acc"}}}, r"train.early_stopping.monitor: unknown value 'val_acc'"),
        ({"data": {"dataset": "iris", "split": {"val": 0}}, "train": {"early_stopping": True}}, r"data.split.val is 0, so there are no validation metrics"),
        ({}, r"data: required key is missing"),
    ],
)
def test_each_mistake_names_its_path(raw, expected):
    assert any(__import__("re").search(expected, p) for p in problems(raw)), problems(raw)


def test_shorthands():
    spec = load_spec({"data": {"dataset": "iris"}, "train": {"optimizer": "sgd", "loss": "hinge",
                                                             "schedule": "cosine", "early_stopping": True}})
    assert spec.train.optimizer.name == "sgd"
    assert spec.train.loss.name == "hinge"
    assert spec.train.schedule.name == "cosine"
    assert spec.train.early_stopping.patience == 10


def test_overrides_parse_yaml_values():
    spec = load_spec({"data": {"dataset": "iris"}},
                     ["train.epochs=30", "model.layers=[256, 128]", "model.dropout=0.2",
                      "train.optimizer=sgd", "train.optimizer.momentum=0.9", "train.batch_size=full"])
    assert spec.train.epochs == 30 and spec.model.layers == [256, 128] and spec.model.dropout == 0.2
    assert spec.train.optimizer.name == "sgd" and spec.train.optimizer.params() == {"lr": 0.001, "momentum": 0.9}
    assert spec.train.batch_size == "full"


def test_bad_override_is_explained():
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        apply_override({}, "train.epochs")
    with pytest.raises(SpecError, match="'name' holds a value, not a section"):
        apply_override({"name": "x"}, "name.first=1")


def test_yaml_file_errors_name_the_line(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("data:\n  dataset: iris\n  target: [unclosed\n")
    with pytest.raises(SpecError, match=r"not valid YAML at line \d+"):
        load_spec(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="expected a mapping of sections"):
        load_spec(path)
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "missing.yaml")


def test_yaml_cannot_run_code(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\ndata: {dataset: iris}\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_dataset_and_path_together_are_refused(mixed_csv):
    assert any("give exactly one of 'dataset'" in p for p in problems({"data": {"dataset": "iris", "path": str(mixed_csv)}}))


def test_relative_data_path_resolves_against_the_spec_file(tmp_path, mixed_frame):
    (tmp_path / "sub").mkdir()
    mixed_frame.to_csv(tmp_path / "sub" / "rows.csv", index=False)
    path = tmp_path / "sub" / "spec.yaml"
    path.write_text("data: {path: rows.csv, target: label}\n")
    spec = load_spec(path)
    assert spec.data.path == str((tmp_path / "sub" / "rows.csv").resolve())


def test_validation_does_not_import_torch():
    code = (
        "import sys, layerforge as lf\n"
        "lf.load_spec({'data': {'dataset': 'iris'}, 'train': {'loss': 'hinge', 'optimizer': 'sgd'}})\n"
        "print('torch' in sys.modules, 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
