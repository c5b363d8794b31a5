"""`layerforge tune`: the search section is validated all at once; trials are ordinary runs in the
study directory, pruned from their epoch records; budgets refuse architectures before they
train; failures are recorded; best.yaml trains the best trial again; several workers (SQLite
on one machine, PostgreSQL across processes) share one study without colliding."""

import csv
import os
import subprocess
import sys
import warnings

import optuna
import pytest
import yaml

import layerforge as lf
from layerforge.errors import SpecError

from . import postgres

BASE = {"name": "iris-search", "data": {"dataset": "iris"}, "model": {"layers": [16]},
        "train": {"epochs": 8, "batch_size": 16}}


def _spec(**search):
    return {**BASE, "search": {"space": {"train.optimizer.lr": {"log_uniform": [0.003, 0.1]},
                                         "model.layers": {"choice": [[8], [32, 16]]}}, **search}}


def _trials(tuned):
    storage = f"sqlite:///{tuned.path / 'study.db'}"
    return optuna.load_study(study_name=tuned.study, storage=storage).get_trials(deepcopy=False)


def test_the_search_section_is_validated_all_at_once(tmp_path):
    bad = {**BASE, "search": {
        "space": {"model.dropuot": {"uniform": [0, 0.5]},
                  "train.optimizer.lr": {"log_uniform": [0.1, 0.01]},
                  "model.activation": {"choice": ["relu", "rleu"]},
                  "model.layers": {"int_uniform": [1, 3]},
                  "train.epochs": {"uniform": [1, 2], "choice": [3]}},
        "metric": "accuracy_score", "sampler": "cmaes"}}
    with pytest.raises(SpecError) as raised:
        lf.load_spec(bad)
    problems = raised.value.problems
    text = "\n".join(problems)
    assert "search.space.train.optimizer.lr.log_uniform: expected low < high, got [0.1, 0.01]" in text
    assert "search.space.train.epochs: give exactly one of uniform, log_uniform, int_uniform, log_int_uniform, " \
           "choice (got uniform, choice)" in text
    assert len(problems) == 2  # field problems first; once they are fixed, the values are tried
    bad["search"]["space"]["train.optimizer.lr"] = {"log_uniform": [0.01, 0.1]}
    del bad["search"]["space"]["train.epochs"]
    with pytest.raises(SpecError) as raised:
        lf.load_spec(bad)
    text = "\n".join(raised.value.problems)
    assert "search.metric: unknown metric 'accuracy_score' for classification — did you mean 'accuracy'?" in text
    assert "search.space.model.dropuot: 0.0 does not fit the spec: model: unknown key 'dropuot' — did you mean " \
           "'dropout'?" in text
    assert "search.space.model.activation: 'rleu' does not fit the spec: model.activation: unknown activation " \
           "'rleu' — did you mean 'relu'?" in text
    assert "search.space.model.layers: 1 does not fit the spec: model.layers: expected a list" in text
    assert "search.sampler: cmaes samples numbers only; use tpe for a space with choices" in text
    with pytest.raises(SpecError, match="the spec has no search section"):
        lf.tune(BASE, runs_dir=tmp_path)
    with pytest.raises(SpecError, match="give a space of keys to search, or architecture: true"):
        lf.load_spec({**BASE, "search": {"trials": 3}})
    with pytest.raises(SpecError, match="search: trials are compared on the validation rows"):
        lf.load_spec({**_spec(), "data": {"dataset": "iris", "split": {"val": 0}}})


def test_a_study_writes_its_trials_and_a_best_spec_that_trains_the_best_trial_again(tmp_path):
    tuned = lf.tune(_spec(trials=4, pruner="none"), runs_dir=tmp_path)
    assert tuned.counts["complete"] == 4 and tuned.metric == "accuracy" and tuned.direction == "maximize"
    trials = _trials(tuned)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    values = [t.value for t in trials]
    assert tuned.best_value == max(values) and trials[tuned.best_trial].value == tuned.best_value
    runs = sorted(p.name for p in tuned.path.iterdir() if p.is_dir())
    assert len(runs) == 4 and all(name.startswith("iris-search-t000") for name in runs)
    with open(tuned.path / "trials.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["state"] for row in table] == ["complete"] * 4 and {"model.layers", "train.optimizer.lr"} <= set(table[0])
    page = (tuned.path / "report.html").read_text()
    assert "Optimisation history" in page and "Parallel coordinates" in page and "Importances" in page
    best = yaml.safe_load(tuned.best_spec.read_text())
    assert "search" not in best and best["name"] == "iris-search-best"
    chosen = trials[tuned.best_trial].user_attrs["values"]
    assert best["train"]["optimizer"]["lr"] == chosen["train.optimizer.lr"] and best["model"]["layers"] == chosen[
        "model.layers"]
    again = lf.train(str(tuned.best_spec), runs_dir=tmp_path / "again")
    assert again.metrics["val"]["accuracy"] == tuned.best_value
    assert again.metrics["test"] == lf.load_run(tuned.best_run).metrics["test"]
    resumed = lf.tune(_spec(trials=4, pruner="none"), trials=2, runs_dir=tmp_path)  # the same study continues
    assert sum(resumed.counts.values()) == 6 and sorted(t.number for t in _trials(resumed)) == list(range(6))


def test_bad_trials_are_pruned_from_their_epoch_records(tmp_path):
    spec = {**BASE, "train": {"epochs": 12, "batch_size": 16},
            "search": {"space": {"train.optimizer.lr": {"choice": [0.00001, 0.05]}}, "trials": 10, "sampler": "random",
                       "pruner": "median"}}
    tuned = lf.tune(spec, runs_dir=tmp_path)
    pruned = [t for t in _trials(tuned) if t.state == optuna.trial.TrialState.PRUNED]
    assert tuned.counts["pruned"] == len(pruned) >= 1
    assert all(t.params["train.optimizer.lr"] == 0.00001 for t in pruned)  # the rate that cannot learn in 12 epochs
    assert all(t.user_attrs["epochs"] < 12 for t in pruned)
    assert tuned.best_value > 0.8


def test_architecture_search_refuses_models_over_its_budget_before_training(tmp_path):
    spec = {**BASE, "search": {"architecture": {"max_parameters": 600}, "trials": 8, "pruner": "none",
                               "sampler": "random"}}
    tuned = lf.tune(spec, runs_dir=tmp_path)
    trials = _trials(tuned)
    refused = [t for t in trials if "max_parameters" in (t.user_attrs.get("refused") or "")]
    trained = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert refused and trained and len(refused) + len(trained) == 8
    assert all(t.user_attrs["parameters"] > 600 and "run" not in t.user_attrs for t in refused)
    assert all(t.user_attrs["parameters"] <= 600 for t in trained)
    assert {"model.layers.length", "model.activation", "model.norm"} <= set(trained[0].params)
    best = yaml.safe_load(tuned.best_spec.read_text())
    assert lf.train(best, runs_dir=tmp_path / "again").manifest.model.parameters <= 600
    with pytest.raises(SpecError, match="search.architecture: a gan has no architecture space"):
        lf.load_spec({"data": {"dataset": "digits"}, "model": {"type": "gan"}, "search": {"architecture": True}})


def test_a_failing_trial_is_recorded_as_failed_and_the_study_goes_on(tmp_path):
    spec = {**BASE, "search": {"space": {"train.optimizer.lr": {"choice": [1.0e12, 0.05]},
                                         "train.optimizer.name": {"choice": ["sgd"]}},
                               "trials": 4, "sampler": "grid", "pruner": "none"}}
    tuned = lf.tune(spec, runs_dir=tmp_path)
    trials = _trials(tuned)
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) >= 1 and "the loss became non-finite" in failed[0].user_attrs["error"]
    assert tuned.counts["complete"] >= 1 and tuned.best_value is not None


def test_jobs_share_one_sqlite_study(tmp_path):
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(_spec(trials=4, pruner="none")))
    done = subprocess.run([sys.executable, "-m", "layerforge", "tune", str(path), "--jobs", "2", "--runs-dir",
                           str(tmp_path / "runs")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    study = optuna.load_study(study_name="iris-search", storage=f"sqlite:///{tmp_path / 'runs/iris-search/study.db'}")
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # two processes took trials
    assert "train the best: layerforge train" in done.stderr


def test_two_commands_share_one_postgresql_study(tmp_path):
    why = postgres.available()
    if why:
        if os.environ.get("LAYERFORGE_REQUIRE_POSTGRES"):
            pytest.fail(why)
        pytest.skip(why)
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(_spec(trials=3, pruner="none")))
    with postgres.server() as url:
        command = [sys.executable, "-m", "layerforge", "tune", str(path), "--storage", url, "--study", "shared",
                   "--runs-dir", str(tmp_path / "runs"), "--quiet"]
        workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for _ in range(2)]
        outputs = [worker.communicate(timeout=600) for worker in workers]
        assert [w.returncode for w in workers] == [0, 0], [o[1][-2000:] for o in outputs]
        trials = optuna.load_study(study_name="shared", storage=url).get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(6))  # no collision, and the total is the sum
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    runs = [p for p in (tmp_path / "runs" / "shared").iterdir() if p.is_dir()]
    assert len(runs) == 6


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / "search"


def test_the_search_examples_validate():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        spec = lf.load_spec(path)
        assert spec.search is not None, path


@pytest.mark.slow
def test_mnist1d_architecture_search_beats_the_cnn_example_per_parameter_within_20k(tmp_path):
    """The mnist1d CNN example of docs/search.md: test accuracy 0.993 with 51,274 parameters."""
    tuned = lf.tune(EXAMPLES / "mnist1d_architecture.yaml", trials=12, runs_dir=tmp_path)
    best = lf.load_run(tuned.best_run)
    parameters, accuracy = best.manifest.model.parameters, best.metrics["test"]["accuracy"]
    assert parameters <= 20_000
    assert accuracy / parameters > 0.993 / 51_274 and accuracy >= 0.9
    again = lf.train(str(tuned.best_spec), runs_dir=tmp_path / "again")
    assert again.metrics["test"]["accuracy"] == accuracy


def test_a_trial_whose_worker_died_is_marked_failed_by_the_next_worker(tmp_path, monkeypatch):
    import time

    import layerforge.search as search

    monkeypatch.setattr(search, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(search, "GRACE_SECONDS", 1)
    spec = _spec(trials=1, pruner="none")
    first = lf.tune(spec, runs_dir=tmp_path)
    storage = optuna.storages.RDBStorage(f"sqlite:///{first.path / 'study.db'}", heartbeat_interval=1, grace_period=1)
    study = optuna.load_study(study_name="iris-search", storage=storage)
    with warnings.catch_warnings():  # asking outside optimize is what this test means to do
        warnings.simplefilter("ignore", UserWarning)
        dead = study.ask()  # a trial a worker started, then died in: one heartbeat, then silence
    storage.record_heartbeat(dead._trial_id)
    time.sleep(2.5)
    after = lf.tune(spec, runs_dir=tmp_path)
    states = {t.number: t.state for t in _trials(after)}
    assert states[dead.number] == optuna.trial.TrialState.FAIL and after.counts["running"] == 0
    assert after.counts["complete"] == 2


@pytest.mark.parametrize(("sampler", "pruner"), [("cmaes", "hyperband"), ("random", "median")])
def test_other_samplers_and_pruners_and_the_timeout(tmp_path, sampler, pruner):
    spec = {**BASE, "search": {"space": {"train.optimizer.lr": {"log_uniform": [0.003, 0.1]},
                                         "model.dropout": {"uniform": [0.0, 0.4]}},
                               "trials": 3, "sampler": sampler, "pruner": pruner}}
    tuned = lf.tune(spec, runs_dir=tmp_path)
    trials = _trials(tuned)
    assert len(trials) == 3 and tuned.counts["failed"] == 0 and tuned.best_value is not None
    assert all(0.003 <= t.params["train.optimizer.lr"] <= 0.1 for t in trials)
    timed = lf.tune(spec, timeout=0.01, runs_dir=tmp_path / "timed")  # no trial starts after the timeout
    assert sum(timed.counts.values()) == 1


def test_best_yaml_of_a_spec_with_a_relative_data_path_trains_from_anywhere(tmp_path, monkeypatch):
    """The command tune prints (`layerforge train runs/STUDY/best.yaml`) finds the spec's data,
    whether the spec was a file beside its data or a mapping read from the working folder."""
    import numpy as np
    import pandas as pd

    (tmp_path / "project" / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=120), "z": rng.normal(size=120)})
    frame["y"] = np.where(frame["x"] > 0, "up", "down")
    frame.to_csv(tmp_path / "project" / "data" / "rows.csv", index=False)
    spec = {"name": "rel", "data": {"path": "data/rows.csv", "target": "y"}, "model": {"layers": [4]},
            "train": {"epochs": 1}, "search": {"trials": 1, "space": {"train.optimizer.lr": {"choice": [0.01]}}}}
    (tmp_path / "project" / "search.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    tuned = lf.tune("project/search.yaml", runs_dir=tmp_path / "runs")
    monkeypatch.chdir(tmp_path / "project")
    from_mapping = lf.tune({**spec, "name": "mapped"}, runs_dir=tmp_path / "runs")
    monkeypatch.chdir(tmp_path / "runs")
    for best in (tuned.best_spec, from_mapping.best_spec):
        done = subprocess.run([sys.executable, "-m", "layerforge", "train", str(best), "--runs-dir", str(tmp_path / "again"),
                               "--quiet"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert yaml.safe_load(best.read_text())["data"]["path"] == str(tmp_path / "project" / "data" / "rows.csv")


def test_a_study_name_that_is_not_a_plain_name_is_refused(tmp_path):
    for name in ("../escaped", "a/b", "..", ".hidden", "x/../../y"):
        with pytest.raises(SpecError, match="--study: .* is not a plain name"):
            lf.tune(_spec(trials=1), study=name, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "runs").exists()


def test_a_study_continued_with_an_edited_search_is_refused(tmp_path):
    lf.tune({**_spec(trials=1), "train": {"epochs": 1}}, runs_dir=tmp_path)
    kept = (tmp_path / "iris-search" / "spec.yaml").read_text()
    edited = {**_spec(trials=1), "train": {"epochs": 1}}
    edited["search"]["space"]["train.optimizer.lr"] = {"log_uniform": [0.5, 0.9]}
    with pytest.raises(SpecError, match="study 'iris-search' was started from another spec"):
        lf.tune(edited, runs_dir=tmp_path)
    assert (tmp_path / "iris-search" / "spec.yaml").read_text() == kept  # the study's spec is untouched
    more = lf.tune({**_spec(trials=1), "train": {"epochs": 1}}, trials=1, runs_dir=tmp_path)  # more trials: fine
    assert sum(more.counts.values()) == 2


@pytest.mark.slow  # trains to a target, or waits out a kill: run with -m slow
def test_a_study_killed_mid_trial_continues_with_each_trial_counted_once(tmp_path, monkeypatch):
    """kill -9 of `layerforge tune` while a trial trains; the next command marks that trial failed
    (its heartbeat stopped), runs its own trials, and best.yaml trains the best again."""
    import signal
    import time

    import layerforge.search as search

    spec = {"name": "killed", "data": {"dataset": "digits"}, "model": {"layers": [16]},
            "train": {"epochs": 30, "batch_size": 32, "checkpoint_every": 1},
            "search": {"trials": 3, "pruner": "none", "space": {"train.optimizer.lr": {"choice": [0.01, 0.003]}}}}
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(spec))
    killed = subprocess.Popen([sys.executable, "-m", "layerforge", "tune", str(tmp_path / "search.yaml"), "--runs-dir",
                               str(tmp_path / "runs"), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list((tmp_path / "runs" / "killed").glob("killed-t0001*/checkpoints/*")):
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)  # mid-trial: trial 1 has a checkpoint, not its end
    killed.communicate(timeout=60)
    monkeypatch.setattr(search, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(search, "GRACE_SECONDS", 1)
    time.sleep(1.5)
    after = lf.tune(str(tmp_path / "search.yaml"), trials=2, runs_dir=tmp_path / "runs")
    trials = _trials(after)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(numbers))) and len(numbers) == 4  # 0 done, 1 killed, 2 and 3 new
    states = {t.number: t.state for t in trials}
    assert states[1] == optuna.trial.TrialState.FAIL and after.counts["running"] == 0
    assert after.counts["complete"] == 3 and after.counts["failed"] == 1
    with open(after.path / "trials.csv", newline="") as handle:
        assert sorted(int(row["trial"]) for row in csv.DictReader(handle)) == [0, 1, 2, 3]
    again = lf.train(str(after.best_spec), runs_dir=tmp_path / "again")
    assert again.metrics["val"]["accuracy"] == after.best_value


def test_search_ranges_say_what_they_expect_and_name_their_keys():
    cases = [({"uniform": [0.001, float("inf")]}, "search.space.train.optimizer.lr.uniform[1]: expected a finite "
                                                   "number, got inf"),
             ({"uniform": [-1e308, 1e308]}, "search.space.train.optimizer.lr.uniform: the range [-1e+308, 1e+308] is "
                                            "wider than a number can hold"),
             ({"log_uniform": [0, 1]}, "search.space.train.optimizer.lr.log_uniform[0]: expected a number > 0, got 0"),
             ({"normal": [0, 1]}, "search.space.train.optimizer.lr: unknown key 'normal' — did you mean 'uniform'? "
                                  "(valid keys: choice, int_uniform, log_int_uniform, log_uniform, uniform)")]
    for distribution, words in cases:
        with pytest.raises(SpecError) as raised:
            lf.load_spec({**BASE, "search": {"space": {"train.optimizer.lr": distribution}}})
        assert words in "\n".join(raised.value.problems), raised.value.problems
