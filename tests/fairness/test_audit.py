"""layerforge fairness: per-group rates and disparities with intervals; a planted bias of known
size is recovered."""

import json
import subprocess
import sys

import numpy as np
import pytest

import layerforge as lf


def test_the_audit_recovers_a_planted_bias(biased):
    run, frame = biased
    found = lf.audit_fairness(run, ["group"], positive="approve")
    result = found.columns["group"]
    groups = result["groups"]
    assert set(groups) == {"a", "b"} and sum(g["rows"] for g in groups.values()) == run.manifest.rows["test"]
    parity = result["disparities"]["demographic_parity_difference"]
    assert parity["value"] == pytest.approx(groups["a"]["selection_rate"] - groups["b"]["selection_rate"])
    low, high = parity["ci95"]
    assert low < 0.24 < high and parity["flagged"]  # about 0.24 planted in the labels of all rows
    ratio = result["disparities"]["demographic_parity_ratio"]["value"]
    assert ratio == pytest.approx(groups["b"]["selection_rate"] / groups["a"]["selection_rate"])
    assert json.loads((run.path / "fairness" / "fairness.json").read_text())["columns"]["group"]["groups"] == groups


def test_a_fair_column_is_not_flagged_and_mistakes_are_named(biased, tmp_path):
    run, frame = biased
    rows = frame.assign(coin=np.random.default_rng(1).choice(["h", "t"], len(frame)))
    found = lf.audit_fairness(run, ["coin"], rows, positive="approve", thresholds={"demographic_parity_difference": 0.1})
    assert not found.columns["coin"]["disparities"]["demographic_parity_difference"]["flagged"]
    with pytest.raises(lf.DataError, match="--sensitive: column 'gender' is not in .*its columns: x, z, group"):
        lf.audit_fairness(run, ["gender"])
    with pytest.raises(lf.DataError, match="--positive: 'maybe' is not a class"):
        lf.audit_fairness(run, ["group"], positive="maybe")
    regression = lf.train({"data": {"dataset": "diabetes"}, "model": {"layers": [4]}, "train": {"epochs": 1}},
                          runs_dir=tmp_path)
    with pytest.raises(lf.DataError, match="fairness metrics compare classifications; this run does regression"):
        lf.audit_fairness(regression, ["sex"])


def test_the_command_prints_groups_and_flags_and_the_report_shows_them(biased):
    run, _ = biased
    done = subprocess.run([sys.executable, "-m", "layerforge", "fairness", str(run.path), "--sensitive", "group",
                           "--positive", "approve"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "demographic_parity_difference" in done.stdout and "FLAGGED" in done.stdout
    page = (run.path / "report.html").read_text()
    assert "Fairness" in page and "selection rate" in page


def test_the_bootstrap_formulas_equal_fairlearns():
    import warnings

    from fairlearn.metrics import demographic_parity_difference, demographic_parity_ratio, equalized_odds_difference

    from layerforge.fairness import disparities_of

    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(5, 60))
        groups = rng.choice(["a", "b", "c"][: int(rng.integers(2, 4))], n)
        truth, chosen = rng.random(n) < rng.random(), rng.random(n) < rng.random()
        names, index = np.unique(groups, return_inverse=True)
        ours = disparities_of(truth, chosen, index, len(names))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = {"demographic_parity_difference": demographic_parity_difference(truth, chosen, sensitive_features=groups),
                      "demographic_parity_ratio": demographic_parity_ratio(truth, chosen, sensitive_features=groups),
                      "equalized_odds_difference": equalized_odds_difference(truth, chosen, sensitive_features=groups)}
        for name, value in theirs.items():
            assert ours[name] == pytest.approx(value, nan_ok=True), (name, groups, truth, chosen)


def test_rows_of_one_group_have_no_disparity_and_say_so(biased, tmp_path):
    run, frame = biased
    frame[frame["group"] == "a"].to_csv(tmp_path / "only_a.csv", index=False)
    found = lf.audit_fairness(run, ["group"], tmp_path / "only_a.csv", positive="approve", bootstrap=5)
    measured = found.columns["group"]
    assert list(measured["groups"]) == ["a"] and measured["disparities"] == {}
    assert "one group only ('a')" in measured["note"]
    assert any("disparities compare two or more groups" in getattr(block, "text", "") for block in found.blocks())


def test_a_numpy_value_is_quoted_as_the_user_wrote_it(biased):
    import numpy as np

    run, _ = biased
    with pytest.raises(lf.DataError, match=r"--positive: 5 is not a class of this run \(approve, deny\)"):
        lf.audit_fairness(run, ["group"], positive=np.int64(5))


def test_missing_values_in_a_sensitive_column_are_a_group_of_their_own(biased, tmp_path):
    import numpy as np

    run, frame = biased
    rows = frame.head(600).copy()
    rows["age"] = np.where(np.arange(600) % 3 == 0, np.nan, np.where(np.arange(600) % 2 == 0, 30.0, 50.0))
    rows["site"] = np.where(np.arange(600) % 5 == 0, None, np.where(np.arange(600) % 2 == 0, "north", "south"))
    rows.to_csv(tmp_path / "gaps.csv", index=False)  # columns the model does not read, with gaps
    found = lf.audit_fairness(run, ["site", "age"], tmp_path / "gaps.csv", positive="approve", bootstrap=5)
    assert sorted(found.columns["site"]["groups"]) == ["<missing>", "north", "south"]
    assert sorted(found.columns["age"]["groups"]) == ["30", "50", "<missing>"]
    assert found.columns["site"]["groups"]["<missing>"]["rows"] == 120
