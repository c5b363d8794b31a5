"""Progress wherever the program runs: lines in a log, a bar on a terminal that fits its width, one
updating line in a notebook; and the commands that show it."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import types

from layerforge import progress
from layerforge.progress import Meter, clock


def test_clock_reads_minutes_then_hours():
    assert [clock(0), clock(59.6), clock(61), clock(3600), clock(7384)] == ["0:00", "1:00", "1:01", "1:00:00",
                                                                            "2:03:04"]


def test_lines_in_a_log_come_at_a_steady_cadence(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    out = io.StringIO()
    meter = Meter("epoch", 100, out, every=10.0)
    for epoch in range(1, 101):
        now[0] = epoch * 1.0  # a second an epoch
        meter.update(epoch, {"val_loss": 1.0 / epoch})
    lines = out.getvalue().splitlines()
    # the first epoch, then one line each 10 seconds, and the last epoch
    assert [int(re.match(r"epoch (\d+)/100", line).group(1)) for line in lines] == [1, 11, 21, 31, 41, 51, 61, 71,
                                                                                     81, 91, 100]
    assert lines[0] == "epoch 1/100 · val_loss 1 · 0:01 elapsed · ~1:39 left"
    assert lines[5] == "epoch 51/100 · val_loss 0.01961 · 0:51 elapsed · ~0:49 left"
    assert lines[-1] == "epoch 100/100 · val_loss 0.01 · 1:40 elapsed"


def test_time_left_counts_only_this_meters_steps(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    out = io.StringIO()
    meter = Meter("epoch", 40, out, done=30)  # a run resumed after 30 epochs
    now[0] = 2.0
    meter.update(31)
    assert out.getvalue() == "epoch 31/40 · 0:02 elapsed · ~0:18 left\n"


def test_quick_work_shows_nothing_and_steps_print_their_lines():
    out = io.StringIO()
    with Meter("row", 5, out, after=60.0) as meter:
        for _ in range(5):
            meter.advance()
    assert out.getvalue() == ""
    with Meter("fold", 2, out) as meter:
        meter.advance(line="fold1: val accuracy 0.9")
    assert out.getvalue().splitlines() == ["fold1: val accuracy 0.9", "fold 1/2 · 0:00 elapsed · ~0:00 left"]
    assert Meter("epoch", 3, None).update(1) is None  # None: silent


def test_a_terminal_bar_fits_its_width_and_keeps_the_monitored_metric():
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80, color_system=None)
    with Meter("epoch", 300, console) as meter:
        for epoch in range(1, 4):
            meter.update(epoch, {"train_loss": 0.123456, "val_loss": 0.234567, "val_accuracy": 0.98765})
    drawn = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", screen.getvalue()).replace("\r", "\n")
    last = [line for line in drawn.splitlines() if line.strip()][-1]
    assert len(last) <= 80
    assert last.startswith("epoch 3/300") and "val_accuracy 0.9877" in last and "elapsed" in last
    assert "train_loss" not in last  # what gives way first on a narrow terminal


def test_a_notebook_gets_one_updating_line_without_widgets(monkeypatch):
    shown, updated = [], []

    class ZMQInteractiveShell:  # what a Jupyter kernel's IPython is
        pass

    class Handle:
        def update(self, body):
            updated.append(body)

    def display(body, display_id=False):
        assert display_id is True
        shown.append(body)
        return Handle()

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = ZMQInteractiveShell
    display_module = types.ModuleType("IPython.display")
    display_module.HTML, display_module.display = str, display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display_module)
    assert progress.in_notebook()
    meter = Meter("epoch", 3, sys.stdout)
    for epoch in (1, 2, 3):
        meter.update(epoch, {"val_loss": 0.5 / epoch})
    assert len(shown) == 1 and len(updated) == 2
    assert "<progress value='1' max='3'" in shown[0] and "epoch 1/3 · val_loss 0.5" in shown[0]
    assert "<progress value='3' max='3'" in updated[-1] and "epoch 3/3" in updated[-1]


def test_training_with_output_in_a_file_logs_progress(tmp_path):
    """``layerforge train > log``: not a terminal, still progress lines, with the losses and the
    time left; ``--quiet`` prints only the run directory."""
    log = tmp_path / "train.log"
    spec = tmp_path / "spec.yaml"
    spec.write_text("data: {dataset: iris}\ntrain: {epochs: 12, report: false, doctor: false}\n")
    command = [sys.executable, "-m", "layerforge", "train", str(spec), "--runs-dir", str(tmp_path / "runs")]
    with log.open("w") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=300)
    lines = log.read_text().splitlines()
    progress_lines = [line for line in lines if line.startswith("epoch ")]
    assert progress_lines[0].startswith("epoch 1/12 · train_loss ")
    assert "val_loss" in progress_lines[0] and "val_accuracy" in progress_lines[0] and "left" in progress_lines[0]
    assert progress_lines[-1].startswith("epoch 12/12 · ") and progress_lines[-1].endswith("elapsed")
    quiet = subprocess.run([*command, "--quiet"], capture_output=True, text=True, check=True, timeout=300)
    assert quiet.stdout.count("\n") == 1 and "epoch" not in quiet.stdout + quiet.stderr


def test_cross_validation_shows_its_folds_and_time_left(tmp_path):
    from layerforge.evaluation.cv import cross_validate

    out = io.StringIO()
    cross_validate({"data": {"dataset": "iris"}, "train": {"epochs": 2, "report": False, "doctor": False}}, 2,
                   runs_dir=tmp_path, progress=out)
    lines = out.getvalue().splitlines()
    assert [line.split(" · ")[0] for line in lines if line.startswith("fold ")] == ["fold 1/2", "fold 2/2"]
    assert lines[0].startswith("fold1: val loss ") and "left" in lines[1]


def test_tune_shows_trials_and_the_best_so_far(tmp_path):
    from layerforge.search import tune

    out = io.StringIO()
    spec = {"data": {"dataset": "iris"}, "train": {"epochs": 2, "report": False, "doctor": False},
            "search": {"trials": 2, "space": {"train.optimizer.lr": {"log_uniform": [1e-3, 1e-2]}}}}
    tuned = tune(spec, runs_dir=tmp_path, progress=out)
    counts = [line for line in out.getvalue().splitlines() if line.startswith("trial ") and "/" in line.split()[1]]
    assert [line.split(" · ")[0] for line in counts] == ["trial 1/2", "trial 2/2"]
    assert f"best accuracy {tuned.best_value:.4g}" in counts[-1]


def test_export_and_attack_show_progress_once_they_take_long(tmp_path, monkeypatch):
    import layerforge as lf
    from layerforge import export, robustness

    run = lf.train({"data": {"dataset": "iris"}, "train": {"epochs": 2, "report": False, "doctor": False}},
                   runs_dir=tmp_path)
    monkeypatch.setattr(export, "SHOW_AFTER", 0.0)
    monkeypatch.setattr(robustness, "SHOW_AFTER", 0.0)
    out = io.StringIO()
    run.export(progress=out)
    assert out.getvalue().splitlines()[-1].startswith("graph 1/1 · done model.onnx · ")
    out = io.StringIO()
    robustness.attack(run, eps=[0.1, 0.2], steps=2, progress=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("eps 0.1: fgsm ") and lines[1].startswith("budget 1/2 · ")
    assert lines[-1].startswith("budget 2/2 · ")
    monkeypatch.setattr(export, "SHOW_AFTER", 60.0)
    quiet = io.StringIO()
    run.export(progress=quiet)  # quicker than the threshold: nothing shown
    assert quiet.getvalue() == ""


def test_a_real_notebook_kernel_shows_progress_as_html(tmp_path):
    """``lf.train(progress=True)`` in a Jupyter kernel: one HTML line, updated in place, no widgets."""
    import nbclient
    import nbformat

    cell = ("import layerforge as lf\n"
            "run = lf.train({'data': {'dataset': 'iris'}, 'train': {'epochs': 4, 'report': False, 'doctor': False}},"
            f" runs_dir={str(tmp_path / 'runs')!r}, progress=True)\n")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    outputs = notebook.cells[0].outputs
    shown = [o for o in outputs if o.output_type == "display_data"]
    # the client applies each update to the one display, in place: it ends at the last epoch
    assert len(shown) == 1
    assert "<progress value='4' max='4'" in shown[0].data["text/html"]
    assert "epoch 4/4 · train_loss " in shown[0].data["text/html"] and "val_accuracy" in shown[0].data["text/html"]
    assert not any("ipywidgets" in str(o) or o.output_type == "error" for o in outputs)
