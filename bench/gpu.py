"""The GPU path, measured on one CUDA device: bf16 against fp32 for a compute-bound CNN and a
causal Transformer language model, layerforge's loop against a hand-written one on the same
device in the same run (interleaved rounds), and the language model's model FLOP utilisation.

Steps/s come from ``lf.Trainer`` and from a hand-written loop over the same module, batch and
optimizer (AdamW), each precision in turn, rounds interleaved. MFU = 6 x parameters x tokens/s
(plus the attention's 12 x layers x width x context per token) over the device's peak dense
bf16 FLOP/s (``--peak-tflops``; H100/H200 SXM: 989). Accuracy in each precision: the digits CNN
(test accuracy) and the Python-docs language model (bits per character), trained with
``lf.train`` and ``train.precision``.

    python bench/gpu.py [--rounds 3] [--steps 50] [--peak-tflops 989]
    python bench/gpu.py --smoke     # tiny sizes on whatever device there is: checks the script runs
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import layerforge as lf
from layerforge.models import Inputs, build_model

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def cases(smoke: bool) -> dict:
    scale = 8 if smoke else 1
    return {
        "CNN [64,128,256] on 3x64x64": {
            "config": {"type": "cnn", "channels": [64, 128, 256], "head": [256], "norm": "batch"},
            "inputs": Inputs(kind="image", channels=3, height=64 // scale, width=64 // scale),
            "batch": 256 // scale, "classes": 10},
        "Transformer LM d512 x8, context 256": {
            "config": {"type": "transformer", "causal": True, "d_model": 512 // scale, "num_heads": 8,
                       "num_layers": 8 // scale, "positional": "learned"},
            "inputs": Inputs(kind="tokens", vocab_size=8192 // scale, length=256 // scale),
            "batch": 32 // scale, "classes": 8192 // scale},
    }


def batch_of(case: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, n = case["inputs"], case["batch"]
    if inputs.kind == "tokens":
        x = torch.randint(0, inputs.vocab_size, (n, inputs.length), device=device)
        return x, torch.roll(x, -1, dims=1)
    return torch.randn(n, *inputs.shape, device=device), torch.randint(0, case["classes"], (n,), device=device)


def model_of(case: dict, device):
    torch.manual_seed(0)
    return build_model(case["config"], case["inputs"], case["classes"]).to(device)


def hand_steps(case: dict, precision: str, steps: int, device) -> float:
    """Steps/s of a hand-written loop: autocast, AdamW (fused), no host waits but the last."""
    model = model_of(case, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    x, y = batch_of(case, device)
    cast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())

    def step():
        with cast:
            out = model(x)
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps / (time.perf_counter() - started)


def layerforge_steps(case: dict, precision: str, steps: int, device) -> float:
    """Steps/s of ``lf.Trainer`` on ``steps`` batches of the same size (the second epoch's time)."""
    model = model_of(case, device)
    xs, ys = zip(*(batch_of(case, device) for _ in range(steps)))
    x, y = torch.cat(xs).cpu(), torch.cat(ys).cpu()
    from layerforge import tasks

    inputs = case["inputs"]
    task = tasks.get("language_model")(inputs.vocab_size) if inputs.kind == "tokens" else "classification"
    seconds = []

    class Timer(lf.Callback):
        def on_epoch_end(self, trainer, record):
            seconds.append(record["seconds"])

    trainer = lf.Trainer(task=task, epochs=2, batch_size=case["batch"], device=device.type, precision=precision,
                         optimizer={"name": "adamw", "lr": 1e-4}, callbacks=[Timer()])
    trainer.fit(model, (x, y))
    return steps / seconds[-1]


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def flops_per_token(case: dict) -> float:
    model = model_of(case, "cpu")
    parameters = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    config, length = case["config"], case["inputs"].length
    return 6 * parameters + 12 * config["num_layers"] * config["d_model"] * length


def accuracy_in_each_precision(device, smoke: bool) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for precision in ("fp32", "bf16"):
            overrides = [f"train.precision={precision}", f"train.device={device.type}", "train.report=false"]
            if smoke:
                overrides += ["train.epochs=1"]
            cnn = lf.train(EXAMPLES / "images" / "digits_cnn.yaml", overrides=overrides, runs_dir=folder)
            lm_overrides = overrides + (["train.epochs=1", "data.context=16"] if smoke else [])
            lm = lf.train(EXAMPLES / "text" / "python_docs_lm.yaml", overrides=lm_overrides, runs_dir=folder)
            rows.append(f"| {precision} | {cnn.metrics['test']['accuracy']:.4f} | "
                        f"{sum(r['seconds'] for r in cnn.history):.1f} | {lm.metrics['test']['bits_per_token']:.3f} | "
                        f"{sum(r['seconds'] for r in lm.history):.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        raise SystemExit("bench/gpu.py measures a CUDA device; this machine has none (--smoke runs it on the CPU)")
    steps = 3 if args.smoke else args.steps
    found: dict[tuple[str, str, str], list[float]] = {}
    for round_ in range(1 if args.smoke else args.rounds):
        for name, case in cases(args.smoke).items():
            for precision in ("fp32", "bf16"):
                found.setdefault((name, precision, "hand"), []).append(hand_steps(case, precision, steps, device))
                found.setdefault((name, precision, "layerforge"), []).append(
                    layerforge_steps(case, precision, steps, device))
        print(f"round {round_ + 1} done", flush=True)
    title = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke run)"
    print(f"\n### {title}: steps/s, medians of the rounds\n")
    print("| model | precision | hand loop | layerforge | layerforge / hand | MFU (layerforge) |")
    print("|---|---|---|---|---|---|")
    for name, case in cases(args.smoke).items():
        for precision in ("fp32", "bf16"):
            hand = statistics.median(found[(name, precision, "hand")])
            ours = statistics.median(found[(name, precision, "layerforge")])
            mfu = "-"
            if case["inputs"].kind == "tokens":
                tokens = ours * case["batch"] * case["inputs"].length
                mfu = f"{tokens * flops_per_token(case) / (args.peak_tflops * 1e12):.1%}"
            print(f"| {name} | {precision} | {hand:.1f} | {ours:.1f} | {ours / hand:.2f} | {mfu} |")
    print("\n### Accuracy in each precision (lf.train on the examples)\n")
    print("| precision | digits CNN test accuracy | seconds | Python-docs LM bits per character | seconds |")
    print("|---|---|---|---|---|")
    print("\n".join(accuracy_in_each_precision(device, args.smoke)))


if __name__ == "__main__":
    main()
