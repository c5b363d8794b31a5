"""model.json: runs written before it was typed (format 1) still load and predict the same, and a
format-2 manifest survives a round trip and reports what is wrong with it."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import layerforge as lf
from layerforge.errors import CheckpointError
from layerforge.files import sealed
from layerforge.run.manifest import FORMAT, Manifest, read_manifest
from layerforge.run.store import file_checksums

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "format1"
INPUTS = FIXTURES / "inputs"
RUNS = sorted(p.name for p in FIXTURES.iterdir() if (p / "model.json").is_file())


def _copy(name: str, tmp_path) -> Path:
    """The fixture run, copied: nothing may depend on where it was trained."""
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    return target


# what each fixture's expected "evaluate" was measured on (None: the run's own test split)
EVALUATED_ON = {"table_classification": "mixed.csv", "regression": "diabetes_rows.csv", "forecasting": None,
                "sequence": "waves_new.npz", "image": "digit_images.npz", "text": "reviews.csv",
                "autoencoder": "digits_rows.csv", "gan": None}


def _input(expected: dict):
    value = expected["input"]
    return value if isinstance(value, list) else INPUTS / value


def test_every_fixture_is_format_1():
    assert len(RUNS) == 10
    assert all(json.loads((FIXTURES / n / "model.json").read_text())["format"] == "layerforge.model/1" for n in RUNS)


@pytest.mark.parametrize("name", RUNS)
def test_a_format_1_run_predicts_what_it_predicted_before(name, tmp_path):
    run = lf.load_run(_copy(name, tmp_path))
    assert run.manifest.format == FORMAT
    expected = json.loads((run.path / "expected.json").read_text())
    if "predict" in expected and "anomaly" not in expected:
        predicted = run.predict(_input(expected))
        if predicted.dtype == object or isinstance(expected["predict"][0], str):
            assert predicted.tolist() == expected["predict"]
        else:
            # a forecast is now one row of steps per history, as every door answers it (was the steps alone)
            np.testing.assert_allclose(predicted, np.reshape(expected["predict"], predicted.shape), rtol=1e-6, atol=1e-7)
    if "predict_proba" in expected:
        np.testing.assert_allclose(run.predict_proba(_input(expected)), expected["predict_proba"], rtol=1e-6, atol=1e-7)
    if "anomaly" in expected:
        scores, flags = run.anomalies(_input(expected))
        np.testing.assert_allclose(scores, expected["predict"], rtol=1e-6)
        assert flags.tolist() == expected["anomaly"]
        np.testing.assert_allclose(run.embed(_input(expected)), expected["embed"], rtol=1e-5, atol=1e-6)
    if "evaluate" in expected:
        data = EVALUATED_ON[name]
        scores = run.evaluate(None if data is None else INPUTS / data)
        for key, value in expected["evaluate"].items():
            assert scores[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    if "sample" in expected:
        label = 3 if name == "gan" else None
        seed = 1 if name == "gan" else 2
        n = len(expected["sample"])
        np.testing.assert_allclose(run.sample(n, label=label, seed=seed), expected["sample"], rtol=1e-6, atol=1e-7)
    if "generate" in expected:
        assert run.generate("abca", length=30, temperature=0.8, top_k=5, seed=3) == expected["generate"]


def test_a_format_1_run_rewritten_as_format_2_reads_back_equal(tmp_path):
    run_dir = _copy("table_classification", tmp_path)
    manifest = read_manifest(run_dir / "model.json")
    manifest.write(run_dir / "model.json")
    with pytest.raises(CheckpointError, match="files: missing"):  # a finished format-2 run lists its files
        read_manifest(run_dir / "model.json")
    manifest = manifest.model_copy(update={"files": file_checksums(run_dir)})
    manifest.write(run_dir / "model.json")
    assert json.loads((run_dir / "model.json").read_text())["format"] == FORMAT
    assert read_manifest(run_dir / "model.json") == manifest
    expected = json.loads((run_dir / "expected.json").read_text())
    assert lf.load_run(run_dir).predict(INPUTS / expected["input"]).tolist() == expected["predict"]


def test_manifest_problems_name_the_file_and_field(tmp_path):
    run_dir = _copy("regression", tmp_path)
    manifest = {**read_manifest(run_dir / "model.json").to_json(), "files": file_checksums(run_dir)}
    (run_dir / "model.json").write_text(json.dumps(sealed({**manifest, "rows": "many"})))
    with pytest.raises(CheckpointError, match=r"model.json: rows: .*dictionary"):
        lf.load_run(run_dir)
    (run_dir / "model.json").write_text(json.dumps(sealed({**manifest, "format": "layerforge.model/9"})))
    with pytest.raises(CheckpointError, match="is not a layerforge.model/2 file"):
        lf.load_run(run_dir)
    (run_dir / "model.json").write_text(json.dumps(sealed({**manifest, "model": {**manifest["model"], "spec": {"type": "mlpp"}}})))
    with pytest.raises(CheckpointError, match="unknown model type 'mlpp'"):
        lf.load_run(run_dir)
    # an edit that does not recompute the seal is noticed, whatever it changed
    edited = sealed(manifest)
    edited["preprocessing"]["columns"][0]["mean"] += 1.0
    (run_dir / "model.json").write_text(json.dumps(edited))
    with pytest.raises(CheckpointError, match="changed or damaged after it was written"):
        lf.load_run(run_dir)
    (run_dir / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="content_sha256: missing"):
        lf.load_run(run_dir)


def test_a_new_run_writes_a_typed_manifest_that_validates(runs_dir):
    run = lf.train({"data": {"dataset": "iris"}, "model": {"layers": [4]}, "train": {"epochs": 1}}, runs_dir=runs_dir)
    raw = json.loads((run.path / "model.json").read_text())
    assert raw["format"] == FORMAT and raw["split"]["file"] == "split.json"
    assert sealed(raw) == raw  # sealed with the digest of its own content
    raw.pop("content_sha256")
    assert Manifest.model_validate(raw).to_json() == raw
    assert raw["model"]["spec"] == {"type": "mlp", "layers": [4], "activation": "relu", "dropout": 0.0,
                                    "norm": "none", "init": "kaiming", "numbers": "linear"}
