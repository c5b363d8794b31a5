"""layerforge against the tools people would pick instead, on the same model, data, batch size and
optimizer (Adam, lr 1e-3), each run in its own fresh process, interleaved over rounds.

Peers: a hand-written PyTorch loop (tensor slicing), the same loop over a DataLoader, PyTorch
Lightning, Keras 3 on its torch backend, skorch, ``lf.Trainer`` (with and without the training
doctor) and a full ``lf.train`` run (``layerforge train``: data read from an .npz file and split,
validation every epoch, the doctor, history, checkpoints and the report). The torch peers train
the very module layerforge builds; Keras builds the same layers.

Models: an MLP 784-128-64-10 (overhead-bound), a small CNN on 28x28 images (compute-bound), a GRU
on sequences, and a GunPoint-sized case (50 rows, 500 epochs) where per-epoch fixed costs rule.

Reported per model and peer: training samples/s over the epochs after the first (the full run
counts its training rows; its validation and checkpoints are part of its epochs), the median of
per-round ratios to the hand-written slicing loop (only same-round ratios mean anything on a
machine whose speed drifts), start-up to the first optimizer step (process launch to the end of
the first step: imports, data, model), and peak resident memory.

    pip install -e '.[bench]'    # lightning, keras, skorch
    python bench/peers.py [--rounds 3] [--models mlp,cnn,gru,small] [--peers hand,keras,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {
    "mlp": {"rows": 60000, "shape": (1, 28, 28), "epochs": 3, "batch": 128,
            "config": {"type": "mlp", "layers": [128, 64]}},
    "cnn": {"rows": 4000, "shape": (1, 28, 28), "epochs": 3, "batch": 128,
            "config": {"type": "cnn", "channels": [32, 64], "head": [128], "norm": "none"}},
    "gru": {"rows": 6000, "shape": (8, 50), "epochs": 3, "batch": 128,
            "config": {"type": "rnn", "cell": "gru", "hidden_size": 64, "pooling": "last"}},
    "small": {"rows": 50, "shape": (1, 150), "epochs": 500, "batch": 16,
              "config": {"type": "mlp", "layers": [64]}},
}
PEERS = ("hand", "dataloader", "lightning", "keras", "skorch", "lf.Trainer", "lf.Trainer+doctor", "lf.train")
CLASSES = 10


class Clock:
    """When the first optimizer step ended, and when each epoch ended (perf_counter)."""

    def __init__(self):
        self.first_step: float | None = None
        self.epochs: list[float] = []

    def step(self) -> None:
        if self.first_step is None:
            self.first_step = time.perf_counter()

    def epoch(self) -> None:
        self.epochs.append(time.perf_counter())


def data(spec: dict):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(spec["rows"], *spec["shape"])).astype(np.float32)
    y = rng.integers(0, CLASSES, spec["rows"]).astype(np.int64)
    return x, y


def module(spec: dict):
    import torch

    from layerforge.models import Inputs, build_model

    shape = spec["shape"]
    inputs = (Inputs(kind="image", channels=shape[0], height=shape[1], width=shape[2]) if len(shape) == 3
              else Inputs(kind="sequence", channels=shape[0], length=shape[1]))
    torch.manual_seed(0)
    return build_model(spec["config"], inputs, CLASSES)


def hand(spec, x, y, clock, loader=False):
    import torch
    import torch.nn.functional as F

    model = module(spec)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=spec["batch"],
                                          shuffle=True) if loader else None
    model.train()
    for _ in range(spec["epochs"]):
        if loader:
            pairs = batches
        else:
            order = torch.randperm(len(x))
            pairs = ((x[index], y[index]) for index in order.split(spec["batch"]))
        for xb, yb in pairs:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            clock.step()
        clock.epoch()
    return len(x)


def lightning(spec, x, y, clock):
    import lightning as L
    import torch
    import torch.nn.functional as F

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = module(spec)

        def training_step(self, batch, index):
            xb, yb = batch
            return F.cross_entropy(self.net(xb), yb)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class Timer(L.Callback):
        def on_train_batch_end(self, *args):
            clock.step()

        def on_train_epoch_end(self, *args):
            clock.epoch()

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                         batch_size=spec["batch"], shuffle=True)
    trainer = L.Trainer(max_epochs=spec["epochs"], accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[Timer()])
    trainer.fit(Module(), loader)
    return len(x)


def keras(spec, x, y, clock):
    os.environ["KERAS_BACKEND"] = "torch"
    import keras
    from keras import layers

    kind = spec["config"]["type"]
    if kind == "mlp":
        x = x.reshape(len(x), -1)
        stack = [layers.Input(x.shape[1:]), *(layers.Dense(n, activation="relu") for n in spec["config"]["layers"])]
    elif kind == "cnn":
        x = x.transpose(0, 2, 3, 1)  # channels last, Keras's layout
        stack = [layers.Input(x.shape[1:])]
        for channels in spec["config"]["channels"]:
            stack += [layers.Conv2D(channels, 3, padding="same", activation="relu"), layers.MaxPooling2D(2)]
        stack += [layers.GlobalAveragePooling2D(),
                  *(layers.Dense(n, activation="relu") for n in spec["config"]["head"])]
    else:
        x = x.transpose(0, 2, 1)  # (N, steps, channels)
        stack = [layers.Input(x.shape[1:]), layers.GRU(spec["config"]["hidden_size"])]
    model = keras.Sequential([*stack, layers.Dense(CLASSES)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.step()

        def on_epoch_end(self, epoch, logs=None):
            clock.epoch()

    model.fit(x, y, batch_size=spec["batch"], epochs=spec["epochs"], shuffle=True, verbose=0, callbacks=[Timer()])
    return len(x)


def skorch(spec, x, y, clock):
    import torch
    from skorch import NeuralNetClassifier
    from skorch.callbacks import Callback

    class Timer(Callback):
        def on_batch_end(self, net, batch=None, training=None, **kwargs):
            if training:
                clock.step()

        def on_epoch_end(self, net, **kwargs):
            clock.epoch()

    net = NeuralNetClassifier(module(spec), criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=1e-3,
                              max_epochs=spec["epochs"], batch_size=spec["batch"], train_split=None,
                              iterator_train__shuffle=True, verbose=0, callbacks=[("timer", Timer())])
    net.fit(x, y)
    return len(x)


def trainer(spec, x, y, clock, doctor=False):
    import torch

    import layerforge as lf

    class Timer(lf.Callback):
        def on_batch_end(self, trainer, step, loss):
            clock.step()

        def on_epoch_end(self, trainer, record):
            clock.epoch()

    callbacks = [Timer(), *([lf.Doctor()] if doctor else [])]
    fitted = lf.Trainer(task="classification", epochs=spec["epochs"], batch_size=spec["batch"],
                        optimizer={"name": "adam", "lr": 1e-3}, callbacks=callbacks)
    fitted.fit(module(spec), (torch.from_numpy(x), torch.from_numpy(y)))
    return len(x)


def full_run(spec, x, y, clock):
    import numpy as np

    import layerforge as lf

    class Timer(lf.Callback):
        def on_batch_end(self, trainer, step, loss):
            clock.step()

        def on_epoch_end(self, trainer, record):
            clock.epoch()

    folder = Path(tempfile.mkdtemp())
    np.savez(folder / "rows.npz", x=x, y=y)
    images = {"kind": "image"} if len(spec["shape"]) == 3 else {}
    run = lf.train({"name": "peers", "data": {"path": str(folder / "rows.npz"), **images}, "model": spec["config"],
                    "train": {"epochs": spec["epochs"], "batch_size": spec["batch"],
                              "optimizer": {"name": "adam", "lr": 1e-3}}},
                   runs_dir=folder / "runs", progress=False, callbacks=[Timer()])
    return run.manifest.rows["train"]


RUNNERS = {"hand": hand, "dataloader": lambda *a: hand(*a, loader=True), "lightning": lightning, "keras": keras,
           "skorch": skorch, "lf.Trainer": trainer, "lf.Trainer+doctor": lambda *a: trainer(*a, doctor=True),
           "lf.train": full_run}


def worker(peer: str, model: str, launched: float) -> None:
    import resource

    spec = MODELS[model]
    x, y = data(spec)
    clock = Clock()
    rows = RUNNERS[peer](spec, x, y, clock)
    epochs = clock.epochs
    rate = rows * (len(epochs) - 1) / (epochs[-1] - epochs[0])
    first = time.time() - (time.perf_counter() - clock.first_step) - launched
    print(json.dumps({"samples_per_s": rate, "first_step_s": first,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--worker", nargs=2, metavar=("PEER", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, args.launched)
        return
    models, peers = args.models.split(","), args.peers.split(",")
    found: dict[tuple[str, str], list[dict]] = {}
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for round_ in range(args.rounds):
        for model in models:
            order = peers[round_ % len(peers):] + peers[:round_ % len(peers)]  # who goes first rotates
            for peer in order:
                launched = time.time()
                done = subprocess.run([sys.executable, __file__, "--worker", peer, model, "--launched", str(launched)],
                                      capture_output=True, text=True, env=env)
                if done.returncode != 0:
                    print(f"{peer} on {model} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                    continue
                result = {"round": round_, **json.loads(done.stdout.splitlines()[-1])}
                found.setdefault((model, peer), []).append(result)
                print(f"round {round_ + 1}: {model} {peer} {result['samples_per_s']:,.0f} samples/s", flush=True)
    print(f"\n### Peers ({args.rounds} rounds, each peer in a fresh process; ratio: median of per-round ratios "
          "to the hand-written slicing loop)\n")
    print("| model | peer | samples/s (median) | ratio to hand | start-up to first step (s) | peak memory (MB) |")
    print("|---|---|---|---|---|---|")
    for model in models:
        hand_rates = {r["round"]: r["samples_per_s"] for r in found.get((model, "hand"), [])}
        for peer in peers:
            rows = found.get((model, peer))
            if not rows:
                print(f"| {model} | {peer} | failed | - | - | - |")
                continue
            ratios = [r["samples_per_s"] / hand_rates[r["round"]] for r in rows if r["round"] in hand_rates]
            ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
            print(f"| {model} | {peer} | {statistics.median(r['samples_per_s'] for r in rows):,.0f} | {ratio} | "
                  f"{statistics.median(r['first_step_s'] for r in rows):.1f} | "
                  f"{statistics.median(r['peak_mb'] for r in rows):,.0f} |")


if __name__ == "__main__":
    main()
