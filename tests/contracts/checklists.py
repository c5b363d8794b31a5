"""The checklists every registry entry goes through: a model family on each input kind it
reads, and a task from its declarations to a reloaded run. Tests of user-registered families
and tasks call them too."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

import layerforge as lf
from layerforge import tasks
from layerforge.data.kinds import KINDS
from layerforge.data.prepare import prepare
from layerforge.errors import DataError
from layerforge.models import FAMILIES, Inputs, build_model
from layerforge.models.protocol import Network
from layerforge.recipes import RECIPES
from layerforge.training import losses
from layerforge.training.checkpoint import load_weights, save_weights

OUTPUTS, CLASSES = 5, 3

# one example of every input kind a family may read
INPUTS = {
    "table": Inputs.table(6),
    "sequence": Inputs(kind="sequence", channels=3, length=16),
    "image": Inputs(kind="image", channels=1, height=8, width=8),
    "tokens": Inputs(kind="tokens", vocab_size=30, length=12, variable_length=True),
    "pairs": Inputs(kind="pairs", vocab_size=30, length=12, variable_length=True, target_vocab_size=OUTPUTS,
                    target_length=9),  # the outputs: the target vocabulary's logits at every position
    "frames": Inputs(kind="frames", channels=8, length=20, variable_length=True),  # outputs at every frame kept
    "interactions": Inputs(kind="interactions", users=9, items=11),  # a user's index and an item's
}


def _build(family: str, inputs: Inputs):
    torch.manual_seed(0)
    entry = FAMILIES[family]
    config = entry.config(**entry.config.example)
    return build_model(config, inputs, OUTPUTS if entry.predictive else 0, CLASSES)


def check_family(family: str, kind: str, tmp_path) -> None:
    """Build, forward, backward, save/load round trip and, for predictive families, head
    replacement; the network's keyword arguments are its configuration's fields."""
    entry, inputs = FAMILIES[family], INPUTS[kind]
    config = entry.config(**entry.config.example)
    model = _build(family, inputs)
    assert isinstance(model, Network)
    expected = entry.config.network_options()
    parameters = inspect.signature(type(model).__init__).parameters.values()
    keywords = [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert [p.name for p in keywords] == expected, "the network's options must be its configuration's fields"
    assert all(p.default is inspect.Parameter.empty for p in keywords), "defaults live in the configuration only"

    example = model.example_inputs(4)
    assert all(torch.equal(a, b) for a, b in zip(example, model.example_inputs(4)))  # seeded
    assert example[0].shape == (4, *inputs.shape)
    model.train()
    output = model(*example)
    assert torch.isfinite(output).all()
    if entry.predictive and inputs.pairs:  # the next token's logits at every position of the answer begun
        assert output.shape == (4, example[2].shape[1], OUTPUTS)
    elif entry.predictive and inputs.frames:  # logits at every frame the network keeps
        assert output.shape[0] == 4 and output.ndim == 3 and output.shape[-1] == OUTPUTS
        assert 1 <= output.shape[1] <= inputs.length
    elif entry.predictive and config.map_stride() is not None:  # outputs on a grid of cells over the picture
        stride = config.map_stride()
        assert output.shape == (4, OUTPUTS, *[-(-side // stride) for side in inputs.shape[1:]])
    elif entry.predictive:
        assert output.shape == (4, OUTPUTS)
    output.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    if entry.predictive:
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, f"no gradient for {missing}"

    model.eval()
    path = tmp_path / f"{family}-{kind}.safetensors"
    save_weights(path, model.state_dict())
    copy = _build(family, inputs)
    copy.load_state_dict(load_weights(path))
    copy.eval()
    assert torch.equal(model(*example), copy(*example))

    if entry.predictive:
        features = model.features(*example)
        assert features.shape[0] == 4 and features.shape[-1] == model.output_layer.in_features
        model.reset_head(7)
        model.train()
        output = model(*example)
        on_grid = config.map_stride() is not None  # (B, outputs, cells down, cells across)
        assert output.shape[0] == 4 and output.shape[1 if on_grid else -1] == 7
        output.square().mean().backward()
        assert model.output_layer.weight.grad is not None
    else:
        with pytest.raises(TypeError, match="no feature extractor and head"):
            model.features(*example)


def check_task_declarations(task: type[tasks.Task]) -> None:
    """What a task declares is consistent with the registries it names."""
    assert tasks.TASKS[task.name] is task
    assert task.default_loss in losses.LOSSES and losses.LOSSES[task.default_loss].suits(task)
    assert task.headline in task.metrics and task.loss_names
    assert task.recipe in RECIPES
    assert [k for k in KINDS.values() if k.targets == task.trains_on], "no data kind serves it"
    monitors = task.monitors(has_val=True)
    assert {f"train_{n}" for n in task.loss_names} <= set(monitors)
    assert {f"val_{m}" for m in task.metrics} <= set(monitors)
    assert set(task.monitors(has_val=False)) == {f"train_{n}" for n in task.loss_names}
    for metric, higher in task.metrics.items():
        assert task.higher_is_better(f"val_{metric}") is higher and tasks.higher_is_better(f"val_{metric}", task) is higher
    assert not task.higher_is_better("train_loss")
    spec = lf.load_spec({**task.example, "train": {"epochs": 1}})
    assert prepare(spec.data, spec.task, spec.seed).task.name == task.name


def check_task_run(task: type[tasks.Task], runs_dir, **train) -> lf.Run:
    """The task's example trains, reports its metrics and headline, reloads from its directory
    with the same target encoding, evaluates its own test split again, and predicts a table
    of its predictions (or says it does not predict rows)."""
    run = lf.train({**task.example, "train": {"epochs": 2, **train}}, runs_dir=runs_dir)
    assert run.manifest.task == task.name
    for record in run.history:
        assert {f"train_{n}" for n in task.loss_names} <= set(record)
    test = run.metrics["test"]
    assert task.headline in test and math.isfinite(test[task.headline])
    assert set(task.metrics) & set(test)
    again = lf.load_run(run.path)
    assert again.task.record() == tasks.get(task.name).from_manifest(run.manifest, again.predictor.encoder,
                                                                     run.path).record()
    assert again.evaluate()[task.headline] == pytest.approx(test[task.headline], rel=1e-6)
    inputs, _ = again.held_out("test")
    tensors = tuple(torch.as_tensor(np.asarray(part)) for part in inputs)
    try:
        table = again.task.prediction_table(again.model, tensors, run.manifest.target)
    except DataError:
        pass  # a generator or language model does not predict rows
    else:
        answers = again.task.predictions(again.model, tensors)
        assert len(answers) > 0
        if again.task.decoding().table_rows == "answer":  # else a row per box found: none, one or many
            assert len(table) >= len(answers)  # a forecast: a row per step
    assert "<h2>Results</h2>" in (run.path / "report.html").read_text()
    return run


def check_export(family: str, kind: str, tmp_path) -> None:
    """Every graph the network offers exports to ONNX with outputs within the parity tolerance,
    at several batch sizes (and lengths, for rows of unequal lengths)."""
    from layerforge.export.onnx import RTOL, export_graph
    from layerforge.export.parts import seeded_codes

    model = _build(family, INPUTS[kind]).eval()
    rows = model.example_inputs(16, seed=1)
    if INPUTS[kind].variable_length:  # unequal lengths
        rows = (rows[0], torch.randint(1, INPUTS[kind].length + 1, (16,), generator=torch.Generator().manual_seed(1)))
    graphs = model.export_graphs()
    assert graphs and len({g.name for g in graphs}) == len(graphs)
    for graph in graphs:
        inputs = (graph.from_rows(rows) if graph.from_rows else rows) if graph.reads_rows else seeded_codes(graph, 16)
        exported = export_graph(graph, tuple(model.exporters), tmp_path / f"{graph.name}.onnx", inputs, None)
        assert exported.parity["passed"] and exported.parity["max_rel_diff"] <= RTOL
