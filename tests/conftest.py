import numpy as np
import pandas as pd
import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def mixed_frame():
    """A small table with numeric, categorical, boolean and missing values; target 'label'."""
    rng = np.random.default_rng(0)
    n = 120
    size = rng.normal(10, 3, n)
    color = rng.choice(["red", "green", "blue"], n)
    flag = rng.random(n) > 0.5
    label = np.where(size + (color == "red") * 4 > 11.5, "big", "small")
    size[[3, 17, 40]] = np.nan
    frame = pd.DataFrame({"size": size, "color": color, "flag": flag, "label": label})
    frame.loc[[5, 9], "color"] = None
    return frame


@pytest.fixture
def mixed_csv(tmp_path, mixed_frame):
    path = tmp_path / "mixed.csv"
    mixed_frame.to_csv(path, index=False)
    return path


def tiny_spec(**train):
    """A fast iris spec for tests; ``train`` keys override the train section."""
    return {
        "name": "tiny",
        "data": {"dataset": "iris"},
        "model": {"layers": [8]},
        "train": {"epochs": 3, "batch_size": 16, **train},
    }
