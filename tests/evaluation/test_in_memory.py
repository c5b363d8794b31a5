"""Rows in memory (data=) for cross-validation, seeds, deep ensembles and searches: read once,
recorded as data.frame, and the same numbers as from a file."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_wine

import layerforge as lf

SPEC = {"data": {"target": "cultivar"}, "model": {"layers": [16]},
        "train": {"epochs": 15, "report": False, "doctor": False}}


@pytest.fixture(scope="module")
def wine():
    x, y = load_wine(return_X_y=True, as_frame=True)
    return x.assign(cultivar=[f"c{v}" for v in y])


def test_cross_validation_seeds_and_ensembles_take_rows_in_memory(wine, tmp_path):
    cv = lf.cross_validate(SPEC, folds=3, data=wine, runs_dir=tmp_path)
    assert len(cv.runs) == 3 and cv.runs[0].spec.data.frame == "DataFrame (178 rows, 14 columns)"
    path = tmp_path / "wine.csv"
    wine.to_csv(path, index=False)
    from_file = lf.cross_validate({**SPEC, "data": {"path": str(path), "target": "cultivar"}}, folds=3,
                                  runs_dir=tmp_path)
    assert cv.summary["val"]["accuracy"]["values"] == pytest.approx(from_file.summary["val"]["accuracy"]["values"])
    seeds = lf.train_seeds({"model": {"layers": [16]}, "train": {"epochs": 5, "report": False}}, 2,
                           data=(wine.drop(columns=["cultivar"]).to_numpy(), wine["cultivar"].to_numpy()),
                           runs_dir=tmp_path)
    assert [run.spec.data.target for run in seeds.runs] == ["target", "target"]
    ensemble = lf.ensemble(SPEC, seeds=2, data=wine, runs_dir=tmp_path)
    assert len(ensemble.members) == 2 and len(ensemble.predict(wine.drop(columns=["cultivar"]).head(4))) == 4
    with pytest.raises(ValueError, match="data= gives the rows a spec trains on: it applies only with seeds"):
        lf.ensemble([r.path for r in cv.runs], data=wine)


def test_a_search_reads_rows_in_memory_once_in_one_process(wine, tmp_path):
    spec = {**SPEC, "search": {"trials": 2, "space": {"train.optimizer.lr": {"log_uniform": [1e-3, 1e-2]}}}}
    tuned = lf.tune(spec, data=wine, runs_dir=tmp_path)
    assert tuned.counts["complete"] == 2 and tuned.best_value is not None
    with pytest.raises(lf.SpecError, match="rows given in memory .data=. are searched in this process"):
        lf.tune({**spec, "name": "other"}, data=wine, runs_dir=tmp_path, jobs=2)
