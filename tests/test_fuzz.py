"""Property-based fuzzing of everything layerforge reads: specs (as dicts and as YAML bytes),
model sections, CSV and Parquet tables, .npz arrays, and a run's model.json, trainer_state.json
and history.jsonl. Every case must end in a result that is right, or in layerforge's own error
(the command line's exit 2), never in a traceback or a silent wrong answer.

The examples are drawn from a fixed seed, so a run is repeatable. ``LAYERFORGE_FUZZ_SCALE=N``
draws N times as many examples of each kind and prints how each kind ended;
``LAYERFORGE_FUZZ_RANDOM=1`` draws fresh examples on every run instead."""

import collections
import json
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import layerforge as lf
from layerforge.errors import CheckpointError, DataError, OutputError, SpecError
from layerforge.files import SEAL, read_jsonl, sealed
from layerforge.run.store import list_runs
from layerforge.spec.load import load_spec
from layerforge.summary import summarize
from layerforge.training.checkpoint import load_weights

SCALE = int(os.environ.get("LAYERFORGE_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("LAYERFORGE_FUZZ_RANDOM") == "1"
# What the command line turns into exit 2; anything else (TrainingError's exit 1 included) fails.
OWN_ERRORS = (SpecError, DataError, CheckpointError, OutputError)
OUTCOMES: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


def budget(examples: int):
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=not RANDOM, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def ends_well(kind: str, call):
    """Run ``call``: its result, or None when it raised one of layerforge's own errors; any
    other exception propagates and fails the test."""
    try:
        result = call()
    except OWN_ERRORS as error:
        assert str(error).strip() and "Traceback" not in str(error)
        OUTCOMES[kind]["layerforge error"] += 1
        if os.environ.get("LAYERFORGE_FUZZ_SHOW"):
            print(f"{kind}: {str(error).splitlines()[-1][:160]}")
        return None
    OUTCOMES[kind]["result"] += 1
    return result


@pytest.fixture(scope="module", autouse=True)
def _tally():
    yield
    if SCALE > 1:
        print("\nfuzz outcomes:")
        for kind, counts in sorted(OUTCOMES.items()):
            print(f"  {kind:16} {sum(counts.values()):5} cases: {dict(counts)}")


# -- values ------------------------------------------------------------------------------------

TEXT = st.text(alphabet=st.sampled_from(list("ab_-. /[]\\\n\"',:é0123456789\x00")), max_size=12)
NUMBERS = st.one_of(st.integers(-3, 300), st.sampled_from([0, -1, 10**9, 2**63, -(10**12)]),
                    st.floats(allow_nan=True, allow_infinity=True))
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)

RARELY = st.sampled_from([False] * 7 + [True])
SECTIONS = {
    "data": ["dataset", "path", "target", "split", "features", "drop", "categorical", "augment", "lookback",
             "horizon", "context", "tokenizer", "image_size", "anomaly_classes"],
    "model": ["type", "layers", "activation", "dropout", "norm", "init", "channels", "kernel_size", "padding",
              "pool", "head", "cell", "hidden_size", "num_layers", "d_model", "num_heads", "patch_size",
              "latent_size", "variant", "generator", "discriminator", "blocks"],
    "train": ["epochs", "batch_size", "optimizer", "schedule", "loss", "clip_grad_norm", "early_stopping",
              "device", "l1", "l2", "on_divergence", "precision"],
}
VALUES = {"dataset": st.sampled_from(["iris", "digits", "digits_images", "wine", "nope", "../etc"]),
          "type": st.sampled_from(["mlp", "cnn", "rnn", "transformer", "autoencoder", "gan", "quantum"]),
          "layers": st.lists(NUMBERS, max_size=3), "channels": st.lists(NUMBERS, max_size=3),
          "epochs": st.sampled_from([1, 5, 0, -2, 10**12]), "batch_size": st.sampled_from([8, 64, "full", 0, "all"]),
          "optimizer": st.sampled_from([{"name": "adam", "lr": 0.01}, {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                                        {"name": "adamw", "lr": -1}, {"name": "lbfgs"}, "adam"]),
          "schedule": st.sampled_from([{"name": "cosine"}, {"name": "onecycle"}, {"name": "plateau", "patience": 2},
                                       {"name": "step", "step_size": 0}]),
          "loss": st.sampled_from(["cross_entropy", "mse", "hinge", {"name": "cross_entropy", "label_smoothing": 2}]),
          "split": st.sampled_from([{"val": 0.2}, {"val": 0.6, "test": 0.6}, {"val": 0.0, "test": 0.0},
                                    {"shuffle": False}]),
          "device": st.sampled_from(["cpu", "auto", "cuda", "tpu"]),
          "target": st.sampled_from(["label", "species", None, "nope"]),
          "early_stopping": st.sampled_from([{"monitor": "val_loss", "patience": 3}, {"monitor": "val_r2"}, True])}


@st.composite
def specs(draw):
    """A spec near a valid one: known sections and keys with odd values, and unknown ones."""
    spec = {"data": {"dataset": draw(st.sampled_from(["iris", "digits", "digits_images"]))}}
    for section, keys in SECTIONS.items():
        if draw(st.booleans()):
            part = spec.setdefault(section, {})
            for key in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
                part[key] = draw(JSON if key not in VALUES or draw(RARELY) else VALUES[key])
    if draw(RARELY):
        spec[draw(TEXT)] = draw(JSON)
    if draw(RARELY):
        spec["name"] = draw(TEXT)
    return spec


@budget(150)
@given(spec=specs())
def test_fuzzed_specs_validate_or_name_their_problem(spec):
    validated = ends_well("spec", lambda: load_spec(spec))
    if validated is not None:
        assert validated.train.epochs >= 1 and validated.data is not None


@budget(60)
@given(text=st.one_of(st.binary(max_size=200), JSON.map(lambda v: yaml.safe_dump(v).encode("utf-8"))))
def test_fuzzed_spec_files_validate_or_name_their_problem(text, tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_bytes(text)
    ends_well("spec file", lambda: load_spec(path))


SIZES = st.sampled_from([*range(1, 25), 0, -3, 10**9])
FLAGS = st.sampled_from([True, False])
PLAUSIBLE = {"layers": st.lists(SIZES, max_size=3), "channels": st.lists(SIZES, min_size=1, max_size=4),
             "generator": st.lists(SIZES, min_size=1, max_size=2), "discriminator": st.lists(SIZES, min_size=1, max_size=2),
             "head": st.lists(SIZES, max_size=2), "kernel_size": st.sampled_from([1, 2, 3, 5, 9, 500]),
             "stride": st.sampled_from([1, 2, 3]), "dilation": st.sampled_from([1, 2, 4]),
             "pool_size": st.sampled_from([2, 3]), "padding": st.sampled_from(["same", "valid", 0, 2]),
             "pool": st.sampled_from(["max", "avg", "none"]), "pooling": st.sampled_from(["mean", "max", "last", "cls"]),
             "activation": st.sampled_from(["relu", "gelu", "tanh", "swish", "nope"]),
             "dropout": st.sampled_from([0.0, 0.3, 1.0, -0.1]), "norm": st.sampled_from(["batch", "layer", "none"]),
             "cell": st.sampled_from(["lstm", "gru", "rnn"]), "hidden_size": SIZES, "num_layers": st.sampled_from([0, 1, 2, 3]),
             "embedding_size": SIZES, "d_model": st.sampled_from([8, 16, 12, 0]), "num_heads": st.sampled_from([1, 2, 3, 4]),
             "ff_size": SIZES, "patch_size": st.sampled_from([1, 2, 4, 8, 16]), "latent_size": SIZES,
             "max_length": SIZES, "positional": st.sampled_from(["learned", "sinusoidal", "none"]),
             "variant": st.sampled_from(["plain", "denoising", "variational"]), "blocks": st.sampled_from(["mlp", "cnn"]),
             "beta": st.sampled_from([0.5, 1.0, -1.0]), "threshold_quantile": st.sampled_from([0.9, 0.99, 1.5]),
             "generator_activation": st.sampled_from(["tanh", "none", "sigmoid"]),
             "discriminator_activation": st.sampled_from(["leaky_relu", "relu"]),
             "init": st.sampled_from(["kaiming", "xavier", "default", "zeros?"]),
             "noise": st.fixed_dictionaries({}, optional={"kind": st.sampled_from(["gaussian", "mask"]),
                                                          "amount": st.sampled_from([0.1, 0.5, 2.0])}),
             **{flag: FLAGS for flag in ("residual", "bidirectional", "causal", "conditional", "spectral_norm", "ema")}}


@st.composite
def model_sections(draw):
    """A model section of one family: its own keys with plausible values, now and then junk."""
    from layerforge.models import FAMILIES

    family = draw(st.sampled_from(sorted(FAMILIES)))
    keys = [key for key in FAMILIES[family].config.model_fields if key != "type"]
    section = {"type": family}
    for key in draw(st.lists(st.sampled_from(keys), max_size=5, unique=True)):
        junk = draw(RARELY) or key not in PLAUSIBLE
        section[key] = draw(JSON if junk else PLAUSIBLE[key])
    if draw(RARELY):
        section[draw(TEXT)] = draw(JSON)
    return section


@budget(40)
@given(model=model_sections(), dataset=st.sampled_from(["iris", "digits_images"]))
def test_fuzzed_models_build_and_run_or_name_the_key(model, dataset):
    """Validation builds the model and runs it once: a model that validates has layers and
    parameters; one that cannot work is a spec error."""
    summary = ends_well("model", lambda: summarize({"data": {"dataset": dataset}, "model": model}))
    if summary is not None:
        rows, total, trainable = summary
        assert rows and total > 0 and 0 <= trainable <= total


# -- tables ------------------------------------------------------------------------------------

CLEAN = {
    "number": st.floats(-1e3, 1e3),
    "integer": st.integers(-5, 5),
    "word": st.sampled_from(["red", "green", "blue", "a,b", 'q"uote', "[/x]", "é"]),
    "flag": st.booleans(),
}
POISON = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, "", " ", "n/a", "true", "1e5", None, "[/bold]"])


@st.composite
def tables(draw):
    """A table that is mostly fine (so that training runs and its answers can be checked), with
    now and then a poisoned cell, an odd label or too few rows. The bulk of the numbers come from
    a drawn seed; hypothesis decides the shape and the poison."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = draw(st.sampled_from([0, 1, 3, 6, *range(12, 41)]))
    kinds = draw(st.lists(st.sampled_from(["number", "integer", "word", "flag", "date", "text", "set", "vector",
                                           "many"]), min_size=1, max_size=4))
    words = ["the", "box", "was", "late", "fine", "é", "a,b", 'q"uote']
    make = {"number": lambda: rng.normal(0, 50, rows), "integer": lambda: rng.integers(-5, 6, rows),
            "word": lambda: rng.choice(["red", "green", "blue", "a,b", 'q"uote', "[/x]", "é"], rows),
            "flag": lambda: rng.random(rows) > 0.5,
            "date": lambda: [f"{d:02d}/{m:02d}/20{y:02d}" for d, m, y in rng.integers(1, [29, 13, 30], (rows, 3))],
            "text": lambda: [" ".join(rng.choice(words, rng.integers(1, 8))) for _ in range(rows)],
            "set": lambda: ["|".join(rng.choice(["x", "y", "z"], rng.integers(1, 3), replace=False))
                            for _ in range(rows)],
            "vector": lambda: [f"[{a:.2f}, {b:.2f}]" for a, b in rng.normal(size=(rows, 2))],
            "many": lambda: [f"k{v}" for v in rng.integers(0, 30, rows)]}
    frame = pd.DataFrame({f"c{i}_{kind}": make[kind]() for i, kind in enumerate(kinds)})
    frame["label"] = rng.choice(["a", "b", "c"], rows) if draw(st.booleans()) else rng.normal(0, 3, rows)
    for _ in range(draw(st.sampled_from([0, 0, 1, 2])) if rows else 0):
        column = frame.columns[draw(st.integers(0, len(frame.columns) - 1))]
        frame[column] = frame[column].astype(object)
        frame.loc[draw(st.integers(0, rows - 1)), column] = draw(POISON)
    return frame


def _tiny(path, **data):
    return {"data": {"path": str(path), **data}, "model": {"layers": [4]},
            "train": {"epochs": 1, "batch_size": 8, "report": False, "doctor": False}}


def _check_trained(run, rows: int):
    counted = run.meta["rows"]
    assert counted["train"] + counted.get("val", 0) + counted.get("test", 0) == rows  # no row dropped unsaid
    json.loads((run.path / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in metrics"))


@budget(25)
@given(frame=tables(), parquet=st.booleans())
def test_fuzzed_tables_train_and_predict_or_name_the_column(frame, parquet, tmp_path_factory):
    folder = tmp_path_factory.mktemp("table")
    path = folder / ("t.parquet" if parquet else "t.csv")
    if parquet:
        try:
            frame.to_parquet(path, index=False)
        except Exception:  # pyarrow refuses some mixed columns: not a file anyone could hand us
            return
    else:
        frame.to_csv(path, index=False)
    run = ends_well("table", lambda: lf.train(_tiny(path, target="label"), runs_dir=folder / "runs"))
    if run is None:
        return
    _check_trained(run, len(pd.read_parquet(path) if parquet else pd.read_csv(path)))
    rows = frame.drop(columns=["label"])
    predictions = ends_well("table predict", lambda: run.predictor.predict_table(rows))
    if predictions is not None:
        assert len(predictions) == len(rows)
        numbers = predictions.select_dtypes("number").to_numpy(dtype=float)
        assert np.isfinite(numbers).all()
        probabilities = predictions.filter(like="proba_").to_numpy(dtype=float)
        if probabilities.size:
            np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)


@budget(10)
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".parquet", ".npz"]))
def test_fuzzed_bytes_as_data_are_refused_or_read(data, suffix, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bytes")
    (folder / f"d{suffix}").write_bytes(data)
    run = ends_well("bytes", lambda: lf.train(_tiny(folder / f"d{suffix}", target="label"), runs_dir=folder / "runs"))
    assert run is None or run.meta["rows"]["train"] > 0


@st.composite
def arrays(draw):
    """Series or images, mostly well formed (numbers from a drawn seed): now and then of another
    type, with a bad value, an empty axis or labels of another length."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = draw(st.sampled_from([0, 1, 2, *range(8, 31)]))
    shape = draw(st.sampled_from([(rows, 12), (rows, 1, 12), (rows, 2, 9)] * 3 + [(rows, 1, 6, 6), (rows,), (rows, 3, 0)]))
    dtype = draw(st.sampled_from(["float32"] * 4 + ["float64"] * 3 + ["int64", "bool", "U3"]))
    x = (rng.normal(0, 10, shape) if dtype != "U3" else rng.choice(["a", "b"], shape)).astype(dtype)
    if dtype.startswith("float") and x.size and draw(st.integers(0, 3)) == 0:
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([math.nan, math.inf, 1e38]))
    labels = rows + draw(st.sampled_from([0, 0, 0, 0, -1, 2]))
    return x, rng.integers(0, 3, max(labels, 0))


@budget(20)
@given(xy=arrays(), with_y=st.sampled_from([True, True, True, False]))
def test_fuzzed_npz_arrays_train_or_name_the_problem(xy, with_y, tmp_path_factory):
    folder = tmp_path_factory.mktemp("npz")
    x, y = xy
    np.savez(folder / "d.npz", **({"x": x, "y": y} if with_y else {"x": x}))
    run = ends_well("npz", lambda: lf.train(_tiny(folder / "d.npz"), runs_dir=folder / "runs"))
    if run is not None:
        _check_trained(run, len(x))
        assert not with_y or len(y) == len(x)  # mismatched lengths never train


# -- a run's own files -------------------------------------------------------------------------

def _paths(value, prefix=()):
    """Every place in a JSON document: (container, key) pairs, depth first."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, inner in items:
        yield value, key
        yield from _paths(inner, (*prefix, key))


@st.composite
def edits(draw, document):
    """A copy of ``document`` with one to three places deleted, replaced or added to."""
    document = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        places = list(_paths(document))
        if not places:
            break
        container, key = draw(st.sampled_from(places))
        action = draw(st.sampled_from(["replace", "delete", "add", "nudge", "nudge"]))
        value = container[key]
        if action == "nudge" and isinstance(value, (int, float)) and not isinstance(value, bool):
            container[key] = draw(st.sampled_from([value * 2, value + 1, -value, value * 1e6, 0]))
        elif action == "delete":
            del container[key]
        elif action == "add" and isinstance(container, dict):
            container[draw(TEXT)] = draw(JSON)
        else:
            container[key] = draw(JSON)
    return document


IRIS = {"name": "iris", "data": {"dataset": "iris"}, "model": {"layers": [8]},
        "train": {"epochs": 4, "batch_size": 16, "report": False}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished run, and one interrupted after epoch 2 of 4 (with the same spec)."""
    class Stop(lf.Callback):
        def on_epoch_end(self, trainer, record):
            if record["epoch"] == 2:
                raise KeyboardInterrupt

    root = tmp_path_factory.mktemp("fuzzed-runs")
    finished = lf.train(IRIS, runs_dir=root / "finished")
    with pytest.raises(lf.TrainingInterrupted) as caught:
        lf.train(IRIS, runs_dir=root / "interrupted", callbacks=[Stop()])
    from sklearn.datasets import load_iris

    rows = load_iris(as_frame=True).frame.drop(columns=["target"]).head(8)
    rows.columns = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    return finished, caught.value.run_dir, rows


def _fresh(source, tmp_path_factory):
    copy = tmp_path_factory.mktemp("copy") / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns(".lock"))
    return copy


@budget(40)
@given(data=st.data(), reseal=st.booleans())
def test_fuzzed_model_json_is_refused_or_predicts_right(runs, data, reseal, tmp_path_factory):
    finished, _, rows = runs
    original = json.loads((finished.path / "model.json").read_text())
    edited = data.draw(edits({k: v for k, v in original.items() if k != SEAL}))
    copy = _fresh(finished.path, tmp_path_factory)
    (copy / "model.json").write_text(json.dumps(sealed(edited) if reseal else {**edited, SEAL: original[SEAL]}))
    expected = finished.predict_proba(rows)
    probabilities = ends_well("model.json", lambda: lf.load_run(copy).predict_proba(rows))
    if probabilities is None:
        return
    assert probabilities.shape == expected.shape and np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    if not reseal:  # an edit its seal does not cover must change nothing that counts
        assert {k: v for k, v in edited.items()} == {k: v for k, v in original.items() if k != SEAL}
        np.testing.assert_array_equal(probabilities, expected)


def _resumed_equals(resumed, finished):
    weights, expected = load_weights(resumed.path / "model.safetensors"), load_weights(finished.path / "model.safetensors")
    assert weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in expected)
    strip = lambda history: [{k: v for k, v in r.items() if k != "seconds"} for r in history]  # noqa: E731
    assert strip(resumed.history) == strip(finished.history)


@budget(15)
@given(data=st.data(), reseal=st.booleans())
def test_fuzzed_trainer_state_is_refused_or_resumes_right(runs, data, reseal, tmp_path_factory):
    finished, interrupted, _ = runs
    copy = _fresh(interrupted, tmp_path_factory)
    (state_path,) = copy.glob("checkpoints/epoch-*/trainer_state.json")
    original = json.loads(state_path.read_text())
    edited = data.draw(edits({k: v for k, v in original.items() if k != SEAL}))
    state_path.write_text(json.dumps(sealed(edited) if reseal else {**edited, SEAL: original[SEAL]}))
    resumed = ends_well("trainer_state", lambda: lf.train(resume=copy))
    if resumed is not None:
        assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
        if not reseal or edited == {k: v for k, v in original.items() if k != SEAL}:
            _resumed_equals(resumed, finished)


LINES = st.one_of(st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                  JSON.map(lambda v: json.dumps(v)), st.just('{"epoch": 3, "train_lo'))


@budget(15)
@given(lines=st.lists(LINES, min_size=1, max_size=3), keep=st.integers(0, 2), which=st.sampled_from(["interrupted", "finished"]))
def test_fuzzed_history_never_breaks_the_listing_and_is_refused_or_rebuilt(runs, lines, keep, which, tmp_path_factory):
    finished, interrupted, rows = runs
    copy = _fresh(finished.path if which == "finished" else interrupted, tmp_path_factory)
    history = copy / "history.jsonl"
    kept = history.read_text().splitlines(keepends=True)[:keep]
    history.write_text("".join(kept) + "\n".join(lines))
    listed = list_runs(copy.parent)
    assert [entry["run"] for entry in listed] == [copy.name]
    if which == "finished":
        run = ends_well("history", lambda: lf.load_run(copy))
        if run is not None:  # only when nothing changed
            assert history.read_bytes() == (finished.path / "history.jsonl").read_bytes()
    else:
        resumed = ends_well("history", lambda: lf.train(resume=copy))
        assert resumed is not None  # the checkpoint holds the history: a damaged file is rewritten
        _resumed_equals(resumed, finished)
        assert read_jsonl(history, complete=True) == resumed.history


# -- the commands on a finished run, and the files they write ---------------------------------------

BOUNDS = st.one_of(NUMBERS, st.sampled_from([float("inf"), -float("inf"), 1e308, -1e308, 1e-300, 0.0, 0.5, "a"]))
DISTRIBUTIONS = st.one_of(
    st.sampled_from([{"uniform": [0.001, 0.1]}, {"log_uniform": [1e-4, 0.1]}, {"int_uniform": [1, 64]},
                     {"log_int_uniform": [8, 256]}, {"choice": [0.01, 0.1]}, {"choice": [[8], [16, 8]]},
                     {"choice": ["relu", "tanh"]}, {"uniform": [0.0, 0.5]}]),
    st.sampled_from(["uniform", "log_uniform", "int_uniform", "log_int_uniform"]).flatmap(
        lambda kind: st.fixed_dictionaries({kind: st.lists(BOUNDS, min_size=0, max_size=3)})),
    st.dictionaries(st.sampled_from(["uniform", "log_uniform", "int_uniform", "log_int_uniform", "choice", "normal"]),
                    st.one_of(st.lists(BOUNDS, max_size=3), JSON), max_size=2))
SEARCHED = st.sampled_from(["train.optimizer.lr", "model.layers", "train.batch_size", "model.dropout", "nope.key",
                            "train.epochs", "model.activation"])


@budget(80)
@given(space=st.dictionaries(SEARCHED, DISTRIBUTIONS, min_size=1, max_size=3),
       trials=st.one_of(st.sampled_from([1, 5, 20]), NUMBERS))
def test_fuzzed_search_spaces_validate_and_sample_or_name_their_problem(space, trials):
    import optuna

    from layerforge.search.space import sample

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = {**IRIS, "search": {"space": space, "trials": trials}}
    validated = ends_well("search space", lambda: load_spec(spec))
    if validated is None:
        return
    trial = optuna.create_study().ask()
    values = sample(trial, validated.search, validated.model)  # every validated range samples
    for key, value in values.items():
        distribution = space[key]
        (kind, bounds), = distribution.items()
        if kind != "choice":
            assert bounds[0] <= value <= bounds[1] and math.isfinite(value)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """A two-class run on a table with a group column, and its export."""
    folder = tmp_path_factory.mktemp("people")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=240), "group": rng.choice(["a", "b", None], 240)})
    frame["y"] = np.where(frame["x"] > 0, "yes", "no")
    frame.to_csv(folder / "rows.csv", index=False)
    run = lf.train({"data": {"path": str(folder / "rows.csv"), "target": "y"}, "model": {"layers": [4]},
                    "train": {"epochs": 2, "report": False}}, runs_dir=folder / "runs")
    run.export()
    twin = lf.train({"seed": 1, "data": {"path": str(folder / "rows.csv"), "target": "y"}, "model": {"layers": [4]},
                     "train": {"epochs": 2, "report": False}}, runs_dir=folder / "twins")
    return run, frame, twin


@budget(20)
@given(eps=st.lists(st.one_of(NUMBERS, st.sampled_from([1e308, 1e-300, float("nan")])), min_size=1, max_size=3),
       steps=st.sampled_from([1, 2]), norm=st.sampled_from(["linf", "l2", "l3", ""]),
       method=st.sampled_from(["pgd", "fgsm", "cw"]))
def test_fuzzed_attack_options_measure_or_name_the_option(people, eps, steps, norm, method):
    run, _, _ = people
    found = ends_well("attack", lambda: lf.attack(run, eps=eps, steps=steps, norm=norm, method=method))
    if found is not None:
        assert [p["eps"] for p in found.points] == sorted(set(eps))
        assert all(0.0 <= p[name] <= 1.0 for p in found.points for name in ("fgsm", method))


@budget(20)
@given(sensitive=st.lists(st.sampled_from(["group", "x", "y", "nope", ""]), max_size=2),
       positive=st.one_of(st.none(), st.sampled_from(["yes", "no", "maybe", 1])),
       limit=st.one_of(NUMBERS, st.just(-1.0)))
def test_fuzzed_fairness_options_audit_or_name_the_option(people, sensitive, positive, limit):
    run, _, _ = people
    found = ends_well("fairness", lambda: lf.audit_fairness(run, sensitive, positive=positive, bootstrap=3,
                                                            thresholds={"demographic_parity_difference": limit}))
    if found is not None:
        for measured in found.columns.values():
            assert sum(g["rows"] for g in measured["groups"].values()) == found.rows
            for entry in measured["disparities"].values():
                assert entry["value"] is None or -1e-9 <= entry["value"] <= 1 + 1e-9


@budget(12)
@given(target=st.sampled_from(["absent", "empty", "file", "users", "runs", "run", "export", "nested"]))
def test_fuzzed_export_targets_write_or_leave_everything_as_it_was(people, target, tmp_path_factory):
    run, _, _ = people
    place = tmp_path_factory.mktemp("out")
    paths = {"absent": place / "new", "empty": place / "empty", "file": place / "file.csv", "users": place / "users",
             "runs": run.path.parent, "run": run.path, "export": run.path / "export", "nested": place / "a" / "b"}
    (place / "empty").mkdir()
    (place / "file.csv").write_text("x\n1\n")
    (place / "users").mkdir()
    (place / "users" / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in [*place.rglob("*"), *run.path.parent.rglob("*")]
              if p.is_file() and "export" not in p.parts and p.name != "report.html" and p.name != "model.json"}
    folder = ends_well("export --out", lambda: run.export(out=paths[target]))
    after = {p: p.read_bytes() for p in before if p.is_file()}
    assert after == before  # nothing it did not write was changed or deleted
    if folder is not None:
        assert (folder / "runtime.json").is_file() and target in ("absent", "empty", "export", "nested")


@budget(30)
@given(data=st.data(), which=st.sampled_from(["runtime.json", "parity.json"]), reseal=st.booleans())
def test_fuzzed_export_records_are_refused_or_answer_right(people, data, which, reseal, tmp_path_factory):
    from layerforge import runtime
    from layerforge.capabilities import ExportParity

    run, frame, _ = people
    copy = _fresh(run.path / "export", tmp_path_factory)
    original = json.loads((copy / which).read_text())
    edited = data.draw(edits({k: v for k, v in original.items() if k != SEAL}))
    (copy / which).write_text(json.dumps(sealed(edited) if reseal else {**edited, SEAL: original[SEAL]}))
    rows = frame.drop(columns=["y"]).head(20)
    if which == "parity.json":
        found = ends_well("parity.json", lambda: ExportParity.read_in(copy))
        if found is not None:
            ends_well("parity.json", lambda: found.blocks())
        return
    answered = ends_well("runtime.json", lambda: runtime.load(copy).predict_proba(rows))
    if answered is not None:
        assert answered.shape == (20, 2) and np.isfinite(answered).all()
        if not reseal:
            np.testing.assert_array_equal(answered, runtime.load(run.path / "export").predict_proba(rows))


@budget(10)
@given(members=st.lists(st.sampled_from(["run", "twin", "twin", "other", "missing", "file", "folder"]), max_size=4))
def test_fuzzed_ensemble_member_lists_combine_or_name_the_member(people, runs, members, tmp_path_factory):
    from layerforge.evaluation.ensemble import build_ensemble

    run, _, _ = people
    place = tmp_path_factory.mktemp("members")
    (place / "file").write_text("not a run")
    (place / "folder").mkdir()
    paths = {"run": run.path, "twin": people[2].path, "other": runs[0].path, "missing": place / "missing",
             "file": place / "file", "folder": place / "folder"}
    made = ends_well("ensemble", lambda: build_ensemble([paths[m] for m in members], runs_dir=place / "ensembles"))
    if made is not None:
        assert sorted(members) == ["run", "twin"]
        rows = people[1].drop(columns=["y"]).head(10)
        expected = np.mean([run.predict_proba(rows), people[2].predict_proba(rows)], axis=0)
        np.testing.assert_allclose(made.predict_proba(rows), expected, rtol=1e-5, atol=1e-6)


@budget(8)
@given(name=st.one_of(TEXT, st.sampled_from(["../escaped", "a/../../b", ".", "..", "ok-name", "x" * 300])))
def test_fuzzed_study_names_stay_inside_the_runs_folder(name, tmp_path_factory):
    place = tmp_path_factory.mktemp("study")
    spec = {**IRIS, "train": {"epochs": 1, "report": False},
            "search": {"trials": 1, "space": {"train.optimizer.lr": {"choice": [0.01]}}}}
    tuned = ends_well("study name", lambda: lf.tune(spec, study=name or None, runs_dir=place / "runs"))
    outside = [p for p in place.rglob("*") if place / "runs" not in [p, *p.parents]]
    assert outside == []  # nothing is written beside --runs-dir, whatever the name
    if tuned is not None:
        assert tuned.path.parent == place / "runs"
