"""A table whose labels favour group 'a' by about 0.24 for the same features, and a run on it."""

import numpy as np
import pandas as pd
import pytest

import layerforge as lf


@pytest.fixture(scope="package")
def biased(tmp_path_factory):
    """Group 'a' gets the favourable label more often than group 'b' for the same x."""
    folder = tmp_path_factory.mktemp("biased")
    rng = np.random.default_rng(0)
    n = 3000
    group = rng.choice(["a", "b"], n)
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(2 * x + np.where(group == "a", 0.8, -0.8))))
    outcome = np.where(rng.random(n) < p, "approve", "deny")
    frame = pd.DataFrame({"x": x, "z": rng.normal(size=n), "group": group, "outcome": outcome})
    frame.to_csv(folder / "biased.csv", index=False)
    run = lf.train({"data": {"path": str(folder / "biased.csv"), "target": "outcome"}, "model": {"layers": [16]},
                    "train": {"epochs": 20}}, runs_dir=folder / "runs")
    return run, frame
