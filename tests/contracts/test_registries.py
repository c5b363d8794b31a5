"""Every registry entry goes through the same checklist the moment it is registered."""

import math

import pytest
import torch

import layerforge as lf
from layerforge import tasks
from layerforge.data.batches import InMemoryBatches
from layerforge.models import Inputs, build_model
from layerforge.nn import activations, init
from layerforge.recipes.supervised import SupervisedStep, train_one_epoch
from layerforge.training import losses, optim


def MLP(features, layers, outputs, **options):
    return build_model({"type": "mlp", "layers": layers, **options}, Inputs.table(features), outputs)


def _data(task, rows=64, features=5, classes=3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, features, generator=g)
    if task == "classification":
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    else:
        y = (x[:, :1] * 2 + x[:, 1:2]).contiguous()
    return x, y


def _gradients_reach_all(model, loss):
    model.zero_grad()
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(parameter.grad).all(), f"non-finite gradient for {name}"


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_activation(name):
    model = MLP(5, [16, 8], 3, activation=name)
    x, y = _data("classification")
    output = model(x)
    assert output.shape == (64, 3) and torch.isfinite(output).all()
    _gradients_reach_all(model, torch.nn.functional.cross_entropy(output, y))
    assert isinstance(model.blocks[0].activation, type(activations.get(name)))


@pytest.mark.parametrize("name", sorted(init.INITS))
def test_init(name):
    torch.manual_seed(0)
    model = MLP(50, [200], 3, init=name, activation="relu")
    weight = model.blocks[0].linear.weight
    if name == "kaiming":  # std = sqrt(2 / fan_in)
        assert weight.std().item() == pytest.approx(math.sqrt(2 / 50), rel=0.1)
    elif name == "xavier":  # uniform, gain sqrt(2): std = gain * sqrt(2 / (fan_in + fan_out))
        assert weight.std().item() == pytest.approx(math.sqrt(2) * math.sqrt(2 / 250), rel=0.1)
    elif name == "orthogonal":  # rows orthogonal with gain sqrt(2)
        gram = weight[:50] @ weight[:50].T if weight.shape[0] < weight.shape[1] else weight.T @ weight
        assert torch.allclose(gram, 2 * torch.eye(gram.shape[0]), atol=1e-4)
    elif name == "normal":
        assert weight.std().item() == pytest.approx(0.02, rel=0.1)
    if name != "default":
        assert torch.count_nonzero(model.blocks[0].linear.bias) == 0
    x, y = _data("classification", features=50)
    _gradients_reach_all(model, torch.nn.functional.cross_entropy(model(x), y))


LOSS_CASES = [(name, task) for name, entry in sorted(losses.LOSSES.items())
              for task in ("classification", "regression") if entry.suits(tasks.get(task))]


@pytest.mark.parametrize(("name", "task"), LOSS_CASES)
def test_loss_trains(name, task):
    torch.manual_seed(0)
    x, y = _data(task)
    model = MLP(5, [16], 3 if task == "classification" else 1)
    loss_fn = losses.get(name, task)
    before = loss_fn(model(x), y)
    assert before.ndim == 0 and torch.isfinite(before)
    _gradients_reach_all(model, before)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    assert loss_fn(model(x), y).item() < before.item()


def test_losses_match_reference_formulas():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    target = torch.tensor([0, 2])
    probs = logits.softmax(-1)
    one_hot = torch.nn.functional.one_hot(target, 3).float()
    ce = -(probs[[0, 1], target]).log().mean()
    assert losses.get("cross_entropy", "classification")(logits, target).item() == pytest.approx(ce.item(), rel=1e-6)
    assert losses.get("mse", "classification")(logits, target).item() == pytest.approx(((probs - one_hot) ** 2).mean().item(), rel=1e-6)
    # hinge: mean over samples of sum_{j != y} max(0, 1 - x_y + x_j) / C
    hinge = sum(max(0.0, 1 - logits[i, target[i]].item() + logits[i, j].item())
                for i in range(2) for j in range(3) if j != target[i]) / 3 / 2
    assert losses.get("hinge", "classification")(logits, target).item() == pytest.approx(hinge, rel=1e-6)
    # KL(one_hot || p) equals cross-entropy when there is no smoothing
    assert losses.get("kl_div", "classification")(logits, target).item() == pytest.approx(ce.item(), rel=1e-5)
    pred, true = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [0.5]])
    assert losses.get("mae", "regression")(pred, true).item() == pytest.approx(1.75)
    assert losses.get("huber", "regression", {"delta": 1.0})(pred, true).item() == pytest.approx((0.5 + 2.0) / 2)


def test_register_loss_is_usable_from_a_spec(runs_dir):
    class ScaledCrossEntropy(torch.nn.Module):
        def __init__(self, scale=1.0):
            super().__init__()
            self.scale = scale

        def forward(self, output, target):
            return self.scale * torch.nn.functional.cross_entropy(output, target)

    lf.register_loss("scaled_ce", ScaledCrossEntropy, tasks=("classification",))
    try:
        with pytest.raises(lf.SpecError, match="loss 'scaled_ce' does not suit task 'regression'"):
            lf.load_spec({"data": {"dataset": "diabetes"}, "task": "regression", "train": {"loss": "scaled_ce"}})
        run = lf.train({"data": {"dataset": "iris"}, "train": {"epochs": 2, "loss": {"name": "scaled_ce", "scale": 2.0}}},
                       runs_dir=runs_dir)
        assert run.spec.train.loss.params() == {"scale": 2.0}
        with pytest.raises(ValueError, match="built-in loss"):
            lf.register_loss("mse", ScaledCrossEntropy)
    finally:
        losses.LOSSES.pop("scaled_ce", None)


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_optimizer_takes_a_step(name):
    torch.manual_seed(0)
    x, y = _data("classification")
    model = MLP(5, [16], 3)
    params = {"lr": 0.05}
    if name == "sgd":
        params.update(momentum=0.9, nesterov=True)
    optimizer = optim.build_optimizer(name, params, model.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    loss_fn = losses.get("cross_entropy", "classification")
    first = loss_fn(model(x), y).item()
    batches = InMemoryBatches(x, y, 16, generator=torch.Generator().manual_seed(0))
    step = SupervisedStep(model, lambda m, inputs, y: loss_fn(m(*inputs), y), optimizer)
    for _ in range(20):
        train_one_epoch(model, batches, step)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert loss_fn(model(x), y).item() < first


@pytest.mark.parametrize("name", sorted(optim.SCHEDULES))
def test_schedule_values(name):
    epochs, steps = 10, 5
    params = {"step": {"step_size": 3, "gamma": 0.5}, "exponential": {"gamma": 0.9}}.get(name, {})
    schedule = optim.Schedule(name, 0.1, epochs, steps, **params)
    rates = [schedule.lr(e, s) for e in range(epochs) for s in range(steps)]
    assert all(r > 0 or name in ("cosine", "onecycle") for r in rates)
    if name in ("none", "plateau"):
        assert set(rates) == {0.1}
    if name == "step":
        assert schedule.lr(2, 4) == 0.1 and schedule.lr(3, 0) == 0.05 and schedule.lr(9, 0) == 0.0125
    if name == "exponential":
        assert schedule.lr(4, 0) == pytest.approx(0.1 * 0.9**4)
    if name == "cosine":
        assert rates[0] == pytest.approx(0.1) and rates[-1] < 0.001 and rates == sorted(rates, reverse=True)
    if name == "onecycle":
        peak = rates.index(max(rates))
        assert max(rates) == pytest.approx(0.1, rel=1e-3) and 0 < peak < len(rates) - 1
        assert rates[0] == pytest.approx(0.1 / 25) and rates[-1] < rates[0]


def test_warmup_and_plateau():
    schedule = optim.Schedule("plateau", 1.0, 20, 4, warmup_epochs=1, patience=1, factor=0.5)
    assert [schedule.lr(0, s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    for value in [1.0, 0.9, 0.95, 0.95]:  # improves, then stalls for two epochs (> patience 1)
        schedule.epoch_end({"val_loss": value})
    assert schedule.lr(5, 0) == 0.5
    state = schedule.state_dict()
    other = optim.Schedule("plateau", 1.0, 20, 4, patience=1, factor=0.5)
    other.load_state_dict(state)
    assert other.lr(5, 0) == 0.5


@pytest.mark.parametrize("name", sorted(optim.SCHEDULES))
def test_schedule_drives_a_real_training_run(name):
    x, y = _data("classification")
    schedule = {"name": name, "warmup_epochs": 1}
    trainer = lf.Trainer(task="classification", epochs=4, batch_size=16, schedule=schedule,
                         optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9})
    trainer.fit(MLP(5, [8], 3), (x[:48], y[:48]), (x[48:], y[48:]))
    rates = [r["lr"] for r in trainer.history_]
    assert len(rates) == 4 and all(0 < r <= 0.1 + 1e-12 for r in rates)
    if name in ("cosine", "onecycle", "exponential"):
        assert rates[-1] < rates[1]


def test_train_accepts_a_spec_object(runs_dir):
    spec = lf.Spec(data={"dataset": "iris"}, model={"layers": [8]}, train={"epochs": 2})
    run = lf.train(spec, runs_dir=runs_dir)
    assert run.spec.model.layers == [8] and run.metrics["epochs"] == 2
