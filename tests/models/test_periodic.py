"""Periodic embeddings of a table's numbers (model.numbers: periodic), in the MLP and the
FT-Transformer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

import layerforge as lf
from layerforge import runtime
from layerforge.models import build_model
from layerforge.models.inputs import Inputs
from layerforge.nn.layers import PeriodicNumbers


def test_a_periodic_embedding_is_relu_of_a_linear_map_of_sines_and_cosines():
    torch.manual_seed(0)
    layer = PeriodicNumbers([1, 3], frequencies=4, size=5)
    x = torch.randn(6, 4)
    out = layer(x)
    assert out.shape == (6, 2, 5)
    angles = 2 * math.pi * x[:, 3, None] * layer.frequencies[1]  # the second number: position 3
    waves = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    torch.testing.assert_close(out[:, 1], torch.relu(waves @ layer.weight[1] + layer.bias[1]))
    out.sum().backward()
    assert layer.frequencies.grad is not None and layer.frequencies.grad.abs().sum() > 0


def test_the_mlp_and_the_ft_transformer_read_numbers_through_them():
    inputs = Inputs.table(5, [[0, 1, 0], [1, 3, 0], [4, 1, 0]], numbers=[0, 4])
    for config, parameters in (({"type": "mlp", "layers": [8], "numbers": "periodic"}, "embed.periodic.frequencies"),
                               ({"type": "ft_transformer", "d_model": 8, "num_heads": 2, "num_layers": 1,
                                 "numbers": "periodic"}, "tokens.periodic.frequencies")):
        model = build_model(config, inputs, 3)
        assert model(torch.randn(4, 5)).shape == (4, 3)
        assert dict(model.named_parameters())[parameters].shape == (2, 16)


def test_a_run_with_periodic_numbers_exports_with_parity(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "color": rng.choice(["red", "blue"], 400),
                          "label": np.where(np.sin(3 * x[:, 0]) + x[:, 1] > 0, "yes", "no")})
    frame.to_csv(tmp_path / "rows.csv", index=False)
    run = lf.train({"data": {"path": str(tmp_path / "rows.csv"), "target": "label"},
                    "model": {"layers": [32], "numbers": "periodic"}, "train": {"epochs": 30}},
                   runs_dir=tmp_path / "runs")
    assert run.manifest.inputs.numbers == [0, 1] and run.metrics["test"]["accuracy"] >= 0.85
    run.export()
    rows = frame.drop(columns=["label"]).head(20)
    assert (runtime.load(run.path / "export").predict(rows) == run.predict(rows)).all()
