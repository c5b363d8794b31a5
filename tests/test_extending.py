"""A new task and a new model family are each one file (this one) plus one registration line; the
same checklists as the built-ins then pass for them, and specs name them like built-ins."""

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest
import torch
from torch import nn

import layerforge as lf
from layerforge.fields import PositiveInt
from layerforge.models import FAMILIES
from layerforge.models.configs import FamilyConfig
from layerforge.models.protocol import Network, predict_outputs
from layerforge.tasks import TASKS, Task

from .contracts.checklists import check_family, check_task_declarations, check_task_run

# -- a toy model family: a tanh layer and a head -------------------------------------------------


class ToyConfig(FamilyConfig):
    """A single tanh layer of ``width`` units on the flattened row, then a linear head."""

    type: Literal["toy"] = "toy"
    width: PositiveInt = 16

    example: ClassVar[dict[str, Any]] = {"width": 4}


class ToyNet(Network):
    def __init__(self, inputs, output_size: int, *, width: int):
        super().__init__(inputs)
        self.body = nn.Linear(inputs.flat_size, width)
        self.head = nn.Linear(width, output_size)

    def features(self, x, lengths=None):
        return torch.tanh(self.body(x.flatten(1)))  # (B, width)

    @property
    def output_layer(self) -> nn.Linear:
        return self.head

    def forward(self, x, lengths=None):
        return self.head(self.features(x))


def build_toy(config: ToyConfig, inputs, output_size: int, num_classes: int = 0) -> ToyNet:
    return ToyNet(inputs, output_size, **config.arguments())


# -- a toy task: regression around the median, scored by absolute error --------------------------


class MedianRegressionTask(Task):
    """Predict a number; targets are centred on the training median and scaled by the
    interquartile range; the loss is the absolute error."""

    name = "median_regression"
    default_loss = "mae"
    target_form = "values"
    metrics = {"mae": False, "within_20pct": True}
    headline = "mae"
    example = {"data": {"dataset": "diabetes"}, "task": "median_regression", "model": {"type": "mlp", "layers": [8]}}

    def __init__(self, centre: float, scale: float):
        self.centre, self.scale = centre, scale

    @classmethod
    def fit(cls, labels, train, encoder, data_spec, source):
        values = labels.to_numpy(dtype=np.float64)[train]
        q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
        return cls(float(median), float(q3 - q1) or 1.0)

    @classmethod
    def from_manifest(cls, manifest, encoder, run_dir: Path | None = None):
        return cls(manifest.target_scaling.mean[0], manifest.target_scaling.std[0])

    def record(self):
        return {"classes": None, "target_scaling": {"mean": [self.centre], "std": [self.scale]}}

    @property
    def output_size(self) -> int:
        return 1

    def encode_targets(self, labels, source=None):
        return ((labels.to_numpy(dtype=np.float64) - self.centre) / self.scale).astype(np.float32)[:, None]

    def target_tensor(self, y):
        return torch.as_tensor(y, dtype=torch.float32).reshape(len(y), -1)

    def decode(self, outputs):
        return outputs.detach().double().cpu().numpy()[:, 0] * self.scale + self.centre

    def scores(self, outputs, y):
        pred, true = self.decode(outputs), self.decode(y)
        return {"mae": float(np.abs(pred - true).mean()),
                "within_20pct": float(np.mean(np.abs(pred - true) <= 0.2 * np.abs(true)))}

    def predictions(self, model, inputs):
        return self.decode(predict_outputs(model, inputs))


@pytest.fixture
def registered():
    lf.register_model(ToyConfig, build_toy, reads=("table", "sequence", "image"))
    lf.register_task(MedianRegressionTask)
    yield
    FAMILIES.pop("toy", None)
    TASKS.pop("median_regression", None)


@pytest.mark.parametrize("kind", ["table", "sequence", "image"])
def test_the_toy_family_passes_the_model_checklist(registered, kind, tmp_path):
    check_family("toy", kind, tmp_path)


def test_the_toy_family_trains_from_a_spec_and_reloads(registered, runs_dir):
    run = lf.train({"data": {"dataset": "iris"}, "model": {"type": "toy", "width": 8},
                    "train": {"epochs": 40, "optimizer": {"name": "adam", "lr": 0.05}}}, runs_dir=runs_dir)
    assert run.metrics["test"]["accuracy"] >= 0.9
    rows = lf.load_run(run.path)
    assert rows.manifest.model.spec == ToyConfig(width=8) and rows.evaluate()["accuracy"] == run.metrics["test"]["accuracy"]
    with pytest.raises(lf.SpecError, match=r"model: unknown key 'depth' .*valid keys: freeze, init_from, type, width"):
        lf.load_spec({"data": {"dataset": "iris"}, "model": {"type": "toy", "depth": 2}})
    with pytest.raises(lf.SpecError, match="model.type: a toy cannot read corpus data; use one of: rnn, transformer"):
        lf.load_spec({"data": {"dataset": "python_docs"}, "model": {"type": "toy"}})


def test_the_toy_task_passes_the_task_checklist(registered, runs_dir):
    check_task_declarations(MedianRegressionTask)
    run = check_task_run(MedianRegressionTask, runs_dir, epochs=30, optimizer={"name": "adam", "lr": 0.01})
    assert run.metrics["test"]["within_20pct"] > 0.3 and run.metrics["test"]["mae"] < 60  # progression spans 25-346
    with pytest.raises(lf.SpecError, match="loss 'cross_entropy' does not suit task 'median_regression'"):
        lf.load_spec({**MedianRegressionTask.example, "train": {"loss": "cross_entropy"}})


def test_built_in_names_cannot_be_taken(registered):
    with pytest.raises(ValueError, match="'mlp' is a built-in model family"):
        lf.register_model(type("MLPAgain", (ToyConfig,), {"__annotations__": {"type": Literal["mlp"]}, "type": "mlp"}),
                          build_toy, reads=("table",))
    with pytest.raises(ValueError, match="'regression' is a built-in task"):
        lf.register_task(type("RegressionAgain", (MedianRegressionTask,), {"name": "regression"}))
