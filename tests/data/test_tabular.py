import numpy as np
import pandas as pd
import pytest

import layerforge as lf
from layerforge import DataError
from layerforge.data.prepare import prepare
from layerforge.data.splits import Chronological, Holdout, Stratified
from layerforge.data.tabular import Preprocessor, infer_task, read_table


def split_indices(n, val, test, *, seed, labels=None, shuffle=True):
    if not shuffle:
        return Chronological(val, test).split(n)
    if labels is not None:
        return Stratified(val, test, seed).split(n, labels)
    return Holdout(val, test, seed).split(n)


def spec_for(path, **data):
    return lf.load_spec({"data": {"path": str(path), "target": "label", **data}})


def test_preprocessing_is_fitted_on_training_rows_only(mixed_csv):
    spec = spec_for(mixed_csv)
    prepared = prepare(spec.data, None, 0)
    assert prepared.task.name == "classification" and prepared.classes == ["big", "small"]
    size = next(c for c in prepared.preprocessing["columns"] if c["name"] == "size")
    frame = pd.read_csv(mixed_csv)
    parts = split_indices(len(frame), 0.15, 0.15, seed=0, labels=(frame["label"] == "small").to_numpy().astype(int))
    train_sizes = frame["size"].iloc[parts["train"]].dropna()
    assert size["mean"] == pytest.approx(train_sizes.mean())
    assert size["std"] == pytest.approx(train_sizes.std(ddof=0))
    assert size["fill"] == pytest.approx(train_sizes.median())
    assert prepared.preprocessing["encoded_features"] == [
        "size", "size__missing", "color=blue", "color=green", "color=red", "color=<missing>", "flag",
    ]
    (x_train,) = prepared.splits["train"][0]
    assert x_train.dtype == np.float32 and np.isfinite(x_train).all()
    assert abs(x_train[:, 0].mean()) < 0.1  # standardised with training statistics


def test_missing_values_get_median_and_indicator():
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0, 5.0], "y": [0, 1, 0, 1]})
    pre = Preprocessor.fit(frame, ["a"])
    x = pre.transform(frame)
    assert pre.feature_names == ["a", "a__missing"]
    assert x[:, 1].tolist() == [0, 1, 0, 0]
    mean, std = np.mean([1, 3, 5]), np.std([1, 3, 5])
    assert x[1, 0] == pytest.approx((3.0 - mean) / std)


def test_integer_codes_declared_categorical():
    frame = pd.DataFrame({"zone": [1, 2, 3, 2], "y": [0.5, 1.0, 2.0, 1.5]})
    pre = Preprocessor.fit(frame, ["zone"], categorical=["zone"])
    assert pre.feature_names == ["zone=1", "zone=2", "zone=3"]
    # 2.0 read back from a file with missing values is the same category as 2
    x = pre.transform(pd.DataFrame({"zone": [2.0, 3]}))
    assert x.tolist() == [[0, 1, 0], [0, 0, 1]]


def test_unseen_category_is_an_error_naming_row_and_column(tmp_path, mixed_frame):
    pre = Preprocessor.fit(mixed_frame, ["size", "color", "flag"])
    new = mixed_frame.head(4).copy()
    new.loc[2, "color"] = "purple"
    path = tmp_path / "new.csv"
    new.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'color': unseen category 'purple' in row 3 \(line 4 of new.csv\)"):
        pre.transform(read_table(path), source=str(path))
    bucket = pre.transform(new, unknown="bucket")
    color = [i for i, n in enumerate(pre.feature_names) if n.startswith("color=")]
    assert bucket[2, color].tolist() == [0, 0, 0, 0]
    assert bucket[0, color].sum() == 1


def test_wrong_type_in_numeric_column(tmp_path, mixed_frame):
    pre = Preprocessor.fit(mixed_frame, ["size", "color", "flag"])
    new = mixed_frame.head(3).copy().astype({"size": object})
    new.loc[1, "size"] = "big"
    with pytest.raises(DataError, match=r"column 'size': expected numbers, found 'big' in row 2"):
        pre.transform(new)


def test_missing_and_extra_columns(mixed_frame):
    pre = Preprocessor.fit(mixed_frame, ["size", "color", "flag"])
    with pytest.raises(DataError, match="missing column: color"):
        pre.check_columns(mixed_frame.drop(columns=["color"]))
    with pytest.raises(DataError, match="unexpected column: id; remove them or pass ignore_extra"):
        pre.check_columns(mixed_frame.assign(id=1), allowed_extra=("label",))
    pre.check_columns(mixed_frame.assign(id=1), allowed_extra=("label",), ignore_extra=True)


def test_target_problems_are_reported(tmp_path, mixed_frame):
    path = tmp_path / "t.csv"
    mixed_frame.assign(label=mixed_frame["label"].where(mixed_frame.index != 7)).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"target column 'label' has 1 missing value\(s\) \(row 8 \(line 9 of t.csv\)\)"):
        prepare(spec_for(path).data, None, 0)
    with pytest.raises(DataError, match=r"data.target: no column 'lable' .* — did you mean 'label'\?"):
        prepare(lf.load_spec({"data": {"path": str(path), "target": "lable"}}).data, None, 0)
    with pytest.raises(DataError, match="data.target: name the column to predict"):
        prepare(lf.load_spec({"data": {"path": str(path)}}).data, None, 0)
    with pytest.raises(DataError, match="data.drop: no column 'colour'"):
        prepare(spec_for(path, drop=["colour"]).data, None, 0)


def test_dates_and_unreadable_files(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"when": pd.date_range("2020", periods=5), "y": [1.0, 2, 3, 4, 5]}).to_parquet(path)
    prepared = prepare(lf.load_spec({"data": {"path": str(path), "target": "y"}}).data, None, 0)
    assert [column.kind for column in prepared.encoder.state.columns] == ["date"]  # read as a date
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="bad.parquet: cannot be read as a table"):
        read_table(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b\n")
    with pytest.raises(DataError, match="holds no rows"):
        read_table(empty)


def test_parquet_and_csv_give_the_same_data(tmp_path, mixed_frame):
    mixed_frame.to_csv(tmp_path / "a.csv", index=False)
    mixed_frame.to_parquet(tmp_path / "a.parquet", index=False)
    a = prepare(spec_for(tmp_path / "a.csv").data, None, 0)
    b = prepare(spec_for(tmp_path / "a.parquet").data, None, 0)
    np.testing.assert_allclose(a.splits["train"][0][0], b.splits["train"][0][0], rtol=1e-6)


def test_task_inference():
    assert infer_task(pd.Series(["a", "b"])) == "classification"
    assert infer_task(pd.Series([0, 1, 2, 1])) == "classification"
    assert infer_task(pd.Series([0.5, 1.25, 3.0])) == "regression"
    assert infer_task(pd.Series(range(100))) == "regression"


def test_split_is_seeded_stratified_and_disjoint():
    labels = np.array([0] * 80 + [1] * 20)
    a = split_indices(100, 0.2, 0.1, seed=3, labels=labels)
    b = split_indices(100, 0.2, 0.1, seed=3, labels=labels)
    c = split_indices(100, 0.2, 0.1, seed=4, labels=labels)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(100))
    assert (labels[a["val"]] == 1).sum() == 4 and (labels[a["test"]] == 1).sum() == 2
    ordered = split_indices(10, 0.2, 0.2, seed=0, shuffle=False)
    assert ordered["train"].tolist() == list(range(6)) and ordered["test"].tolist() == [8, 9]


def test_batches_are_slices_of_device_tensors():
    import torch

    from layerforge.data.batches import InMemoryBatches

    x = torch.arange(10.0)[:, None]
    y = torch.arange(10)
    batches = InMemoryBatches(x, y, 4, generator=torch.Generator().manual_seed(0))
    seen = [b for b in batches]
    assert [len(by) for _, by in seen] == [4, 4, 2]
    assert sorted(torch.cat([by for _, by in seen]).tolist()) == list(range(10))
    assert all(torch.equal(bx[:, 0].long(), by) for (bx,), by in seen)
    lengths = torch.arange(10) + 1  # several inputs are sliced by the same rows
    for (bx, bl), by in InMemoryBatches((x, lengths), y, 3, generator=torch.Generator().manual_seed(1)):
        assert torch.equal(bl - 1, by) and torch.equal(bx[:, 0].long(), by)
    assert len(InMemoryBatches(torch.zeros(9, 1), torch.zeros(9), 4, min_batch=2)) == 2
