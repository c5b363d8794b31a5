"""layerforge against the tools people would pick instead, on the same model, data, batch size and
optimizer (Adam, lr 1e-3), each run in its own fresh process, interleaved over rounds.

Peers: a hand-written PyTorch loop (tensor slicing), the same loop over a DataLoader, PyTorch
Lightning, Keras 3 on its torch backend, skorch, ``lf.Trainer`` (with and without the training
doctor, and validating after every epoch on the rows a full run validates on: ``lf.Trainer+val``)
and a full ``lf.train`` run (``layerforge train``: data read from an .npz file and split,
validation as ``train.validate_every: auto`` has it (every epoch of a run of up to 100 epochs,
else about 50 times), the doctor, history, checkpoints and the report), also validating after
every epoch (``lf.train/1``: ``train.validate_every: 1``). The torch peers train the very module
layerforge builds; Keras builds the same layers.

Models: an MLP 784-128-64-10 (overhead-bound), a small CNN on 28x28 images (compute-bound), a GRU
on sequences, and a GunPoint-sized case (50 rows, 500 epochs) where per-epoch fixed costs rule.

Reported per model and peer: training samples/s over the epochs after the first (the full run
counts its training rows; its validation and checkpoints are part of its epochs; the peers that
hold rows out are given rows / 0.7, so every peer trains on the same number of rows), the median of
per-round ratios to the hand-written slicing loop (only same-round ratios mean anything on a
machine whose speed drifts), start-up to the first optimizer step (process launch to the end of
the first step: imports, data, model), and peak resident memory.

With ``--to-target``: seconds from process launch until the test accuracy on mnist1d (an MLP
[256, 256], batch 64, Adam 1e-3; checked after every epoch on mnist1d's 1,000 test rows) reaches
``--target``. ``lf.train`` checks its own validation accuracy instead (its split of the training
rows), as ``layerforge train`` would.

    pip install -e '.[bench]'    # lightning, keras, skorch
    python bench/peers.py [--rounds 3] [--models mlp,cnn,gru,small] [--peers hand,keras,...]
    python bench/peers.py --to-target [--target 0.6] [--rounds 3]
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
PEERS = ("hand", "dataloader", "lightning", "keras", "skorch", "lf.Trainer", "lf.Trainer+doctor", "lf.Trainer+val",
         "lf.train", "lf.train/1")
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


TRAIN_SHARE = 0.7  # a full run's default split trains on 70% of the rows (15% validation, 15% test)
SPLITTING = ("lf.Trainer+val", "lf.train", "lf.train/1")  # the peers that hold rows out


def data(spec: dict, split: bool = False):
    """Random rows; a peer that holds rows out gets more, so that it trains on as many as the
    others (the same steps per epoch: with 50 rows a peer training on 35 would take 3 steps of
    up to 16 rows where the others take 4)."""
    import numpy as np

    rows = round(spec["rows"] / TRAIN_SHARE) if split else spec["rows"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, *spec["shape"])).astype(np.float32)
    y = rng.integers(0, CLASSES, rows).astype(np.int64)
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


def trainer(spec, x, y, clock, doctor=False, validate=False):
    import torch

    import layerforge as lf

    class Timer(lf.Callback):
        def on_batch_end(self, trainer, step, loss):
            clock.step()

        def on_epoch_end(self, trainer, record):
            clock.epoch()

    callbacks = [Timer(), *([lf.Doctor()] if doctor else [])]
    fitted = lf.Trainer(task="classification", epochs=spec["epochs"], batch_size=spec["batch"],
                        optimizer={"name": "adam", "lr": 1e-3}, callbacks=callbacks,
                        validate_every=1)  # +val: what validating after every epoch costs
    if not validate:
        fitted.fit(module(spec), (torch.from_numpy(x), torch.from_numpy(y)))
        return len(x)
    # the rows a full run trains and validates on: 70% and 15% (its split's default fractions)
    train, val = int(round(len(x) * TRAIN_SHARE)), int(round(len(x) * 0.15))
    fitted.fit(module(spec), (torch.from_numpy(x[:train]), torch.from_numpy(y[:train])),
               (torch.from_numpy(x[train:train + val]), torch.from_numpy(y[train:train + val])))
    return train


def full_run(spec, x, y, clock, validate_every="auto"):
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
                              "optimizer": {"name": "adam", "lr": 1e-3}, "validate_every": validate_every}},
                   runs_dir=folder / "runs", progress=False, callbacks=[Timer()])
    return run.manifest.rows["train"]


RUNNERS = {"hand": hand, "dataloader": lambda *a: hand(*a, loader=True), "lightning": lightning, "keras": keras,
           "skorch": skorch, "lf.Trainer": trainer, "lf.Trainer+doctor": lambda *a: trainer(*a, doctor=True),
           "lf.Trainer+val": lambda *a: trainer(*a, validate=True),
           "lf.train": full_run, "lf.train/1": lambda *a: full_run(*a, validate_every=1)}


TARGET_SPEC = {"config": {"type": "mlp", "layers": [256, 256]}, "batch": 64, "epochs": 300, "shape": (1, 40)}


def mnist1d():
    import numpy as np
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())  # generated in memory; never downloads or writes
    as_rows = [np.asarray(data[k], dtype=np.float32)[:, None, :] for k in ("x", "x_test")]
    return as_rows[0], np.asarray(data["y"], dtype=np.int64), as_rows[1], np.asarray(data["y_test"], dtype=np.int64)


def to_target(peer: str, target: float, launched: float) -> None:
    """Train until the test accuracy reaches ``target``; print the seconds since launch."""
    import numpy as np
    import torch

    x, y, x_test, y_test = mnist1d()
    spec = TARGET_SPEC
    reached = {}

    def check(model, epoch: int) -> bool:
        if isinstance(model, torch.nn.Module):
            model.eval()
            with torch.no_grad():
                predicted = model(torch.from_numpy(x_test)).argmax(1).numpy()
            model.train()
        else:
            predicted = np.asarray(model(x_test.reshape(len(x_test), -1))).argmax(1)
        if np.mean(predicted == y_test) >= target and "seconds" not in reached:
            reached.update(seconds=time.time() - launched, epochs=epoch + 1)
        return "seconds" in reached

    if peer in ("hand", "dataloader"):
        import torch.nn.functional as F

        model = module(spec)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xt, yt), batch_size=spec["batch"],
                                             shuffle=True)
        for epoch in range(spec["epochs"]):
            pairs = loader if peer == "dataloader" else (
                (xt[i], yt[i]) for i in torch.randperm(len(xt)).split(spec["batch"]))
            model.train()
            for xb, yb in pairs:
                loss = F.cross_entropy(model(xb), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if check(model, epoch):
                break
    elif peer == "lightning":
        import lightning as L
        import torch.nn.functional as F

        class Module(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = module(spec)

            def training_step(self, batch, index):
                return F.cross_entropy(self.net(batch[0]), batch[1])

            def configure_optimizers(self):
                return torch.optim.Adam(self.parameters(), lr=1e-3)

        class Stop(L.Callback):
            def on_train_epoch_end(self, trainer, pl_module):
                trainer.should_stop = check(pl_module.net, trainer.current_epoch)

        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                             batch_size=spec["batch"], shuffle=True)
        L.Trainer(max_epochs=spec["epochs"], accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False, callbacks=[Stop()]).fit(Module(), loader)
    elif peer == "keras":
        os.environ["KERAS_BACKEND"] = "torch"
        import keras
        from keras import layers

        model = keras.Sequential([layers.Input((40,)), layers.Dense(256, activation="relu"),
                                  layers.Dense(256, activation="relu"), layers.Dense(CLASSES)])
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

        class Stop(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                self.model.stop_training = check(lambda rows: self.model.predict(rows, verbose=0), epoch)

        model.fit(x.reshape(len(x), -1), y, batch_size=spec["batch"], epochs=spec["epochs"], shuffle=True, verbose=0,
                  callbacks=[Stop()])
    elif peer == "skorch":
        from skorch import NeuralNetClassifier
        from skorch.callbacks import Callback

        class Stop(Callback):
            def on_epoch_end(self, net, **kwargs):
                if check(net.module_, len(net.history) - 1):
                    raise KeyboardInterrupt  # how skorch ends training early

        NeuralNetClassifier(module(spec), criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=1e-3,
                            max_epochs=spec["epochs"], batch_size=spec["batch"], train_split=None,
                            iterator_train__shuffle=True, verbose=0, callbacks=[("stop", Stop())]).fit(x, y)
    else:
        import layerforge as lf

        class Stop(lf.Callback):
            def on_epoch_end(self, trainer, record):
                if peer.startswith("lf.train"):
                    if record.get("val_accuracy", 0.0) >= target and "seconds" not in reached:
                        reached.update(seconds=time.time() - launched, epochs=record["epoch"])
                    trainer.stop_training = "seconds" in reached
                else:
                    trainer.stop_training = check(trainer.model_, record["epoch"] - 1)

        if peer.startswith("lf.train"):
            lf.train({"name": "target", "data": {"dataset": "mnist1d"}, "model": spec["config"],
                      "train": {"epochs": spec["epochs"], "batch_size": spec["batch"],
                                "optimizer": {"name": "adam", "lr": 1e-3},
                                "validate_every": 1 if peer == "lf.train/1" else "auto"}},
                     runs_dir=Path(tempfile.mkdtemp()), progress=False, callbacks=[Stop()])
        else:
            lf.Trainer(task="classification", epochs=spec["epochs"], batch_size=spec["batch"],
                       optimizer={"name": "adam", "lr": 1e-3}, callbacks=[Stop()]).fit(
                module(spec), (torch.from_numpy(x), torch.from_numpy(y)))
    print(json.dumps({"seconds": reached.get("seconds"), "epochs": reached.get("epochs")}))


def worker(peer: str, model: str, launched: float) -> None:
    import resource

    spec = MODELS[model]
    x, y = data(spec, split=peer in SPLITTING)
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
    parser.add_argument("--to-target", action="store_true", help="time to a target accuracy on mnist1d")
    parser.add_argument("--target", type=float, default=0.6)
    parser.add_argument("--worker", nargs=2, metavar=("PEER", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.worker[1] == "mnist1d-target":
            to_target(args.worker[0], args.target, args.launched)
        else:
            worker(*args.worker, args.launched)
        return
    if args.to_target:
        target_table(args)
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


def target_table(args) -> None:
    peers = [p for p in args.peers.split(",") if p != "lf.Trainer+doctor"]
    found: dict[str, list[dict]] = {}
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for round_ in range(args.rounds):
        for peer in peers[round_ % len(peers):] + peers[:round_ % len(peers)]:
            done = subprocess.run([sys.executable, __file__, "--worker", peer, "mnist1d-target", "--target",
                                   str(args.target), "--launched", str(time.time())], capture_output=True, text=True,
                                  env=env)
            if done.returncode != 0:
                print(f"{peer} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            found.setdefault(peer, []).append(json.loads(done.stdout.splitlines()[-1]))
            print(f"round {round_ + 1}: {peer} {found[peer][-1]}", flush=True)
    print(f"\n### Time to {args.target:.0%} test accuracy on mnist1d (MLP [256, 256], batch 64, Adam 1e-3; "
          f"medians of {args.rounds} rounds, from process launch)\n")
    print("| peer | seconds | epochs |")
    print("|---|---|---|")
    for peer, rows in found.items():
        reached = [r for r in rows if r["seconds"] is not None]
        if not reached:
            print(f"| {peer} | not reached | - |")
            continue
        print(f"| {peer} | {statistics.median(r['seconds'] for r in reached):.1f} | "
              f"{statistics.median(r['epochs'] for r in reached):g} |")


if __name__ == "__main__":
    main()
