"""Exported models against PyTorch: latency at batch 1 and 256 (p50, p99), throughput, int8
size and accuracy, and the torch-free runtime's cold start, on 2 CPU threads.

Trains (or reuses, --runs) the default digits MLP, the digits CNN example and the mnist1d GRU
example, exports each with int8, then times PyTorch eager, ONNX Runtime float and ONNX Runtime
int8 on the same rows, interleaved round by round in this one process. The int8 file is timed
whether or not the export kept it. Prints markdown tables.

    python bench/export.py [--rounds 5] [--threads 2] [--epochs N] [--runs MLP CNN GRU]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import layerforge as lf
from layerforge.export.onnx import session
from layerforge.export.parts import batch_of, held_out_rows, timed
from layerforge.export.quantize import write_int8

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"digits MLP": None, "digits CNN": ROOT / "examples/images/digits_cnn.yaml",
          "mnist1d GRU": ROOT / "examples/sequences/mnist1d_gru.yaml"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="override the specs' epochs (faster, less accurate)")
    parser.add_argument("--runs", nargs=3, default=None, metavar=("MLP", "CNN", "GRU"), help="reuse trained runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="lf-bench-export-"))
    runs = {}
    for (name, spec), given in zip(MODELS.items(), args.runs or [None] * 3):
        if given:
            runs[name] = lf.load_run(given)
            continue
        overrides = [f"train.epochs={args.epochs}"] if args.epochs else []
        print(f"training {name} ...", file=sys.stderr)
        runs[name] = lf.train(spec, overrides=overrides, runs_dir=workdir / "runs")

    sizes, files, rows = {}, {}, {}
    for name, run in runs.items():
        folder = run.export(quantize="int8", log=lambda line: print("  " + line, file=sys.stderr))
        record = json.loads((folder / "parity.json").read_text())
        graph = run.model.export_graphs()[0]
        int8 = workdir / f"{name.replace(' ', '-')}.int8.onnx"
        if (folder / "model.int8.onnx").exists():
            int8.write_bytes((folder / "model.int8.onnx").read_bytes())
        else:
            write_int8(run, graph, folder / "model.onnx", int8)
        files[name] = (graph, folder / "model.onnx", int8)
        rows[name] = held_out_rows(run)[0]
        sizes[name] = record

    print("\n### int8 (headline metric on the test split; kept = the export kept it)\n")
    print("| model | float KiB | int8 KiB | size ratio | accuracy float | accuracy int8 | drop (points) | kept |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, record in sizes.items():
        int8 = record["int8"]
        float_kib = record["graphs"]["model"]["bytes"] / 1024
        int8_kib = files[name][2].stat().st_size / 1024
        metric_float = record["metrics"]["onnx"]["accuracy"]
        metric_int8 = int8.get("metrics", {}).get("accuracy", float("nan"))
        kept = "yes" if int8.get("kept") else f"no: {int8.get('why', '')}"
        print(f"| {name} | {float_kib:.1f} | {int8_kib:.1f} | {int8_kib / float_kib:.2f} | {metric_float:.4f} | "
              f"{metric_int8:.4f} | {100 * (metric_float - metric_int8):.2f} | {kept} |")

    results = {(name, backend, size): [] for name in runs for backend in ("PyTorch eager", "ORT float", "ORT int8")
               for size in (1, 256)}
    sessions = {name: (session(f, args.threads), session(i, args.threads)) for name, (_, f, i) in files.items()}
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr)
        for name, run in runs.items():
            graph = files[name][0]
            model = run.model.eval()
            for size in (1, 256):
                arrays = batch_of(rows[name], size)
                tensors = tuple(torch.from_numpy(a) for a in arrays)
                feed = dict(zip(graph.input_names, arrays))
                with torch.inference_mode():
                    results[(name, "PyTorch eager", size)] += timed(lambda m=model, t=tensors: m(*t), 0.3, most=20000)
                for backend, runner in zip(("ORT float", "ORT int8"), sessions[name]):
                    results[(name, backend, size)] += timed(lambda r=runner, f=feed: r.run(None, f), 0.3, most=20000)

    print(f"\n### latency on {args.threads} threads (p50 / p99 in ms; rows/s from p50; {args.rounds} interleaved "
          "rounds)\n")
    print("| model | backend | batch 1 p50 | batch 1 p99 | batch 256 p50 | batch 256 p99 | rows/s at 256 | "
          "batch 1 vs eager |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in runs:
        eager = statistics.median(results[(name, "PyTorch eager", 1)])
        for backend in ("PyTorch eager", "ORT float", "ORT int8"):
            one, many = results[(name, backend, 1)], results[(name, backend, 256)]
            p = lambda t, q: 1e3 * float(np.percentile(t, q))  # noqa: E731
            print(f"| {name} | {backend} | {p(one, 50):.3f} | {p(one, 99):.3f} | {p(many, 50):.3f} | "
                  f"{p(many, 99):.3f} | {256 / statistics.median(many):,.0f} | "
                  f"{eager / statistics.median(one):.1f}x |")

    folder = runs["digits MLP"].path / "export"
    data = workdir / "rows.csv"
    from layerforge.data import builtin

    builtin.load("digits").drop(columns="label").head(100).to_csv(data, index=False)
    code = ("import time; t = time.perf_counter(); from layerforge.runtime import load; "
            f"load({str(folder)!r}).predict({str(data)!r}); import sys, re; "
            "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
            "print(time.perf_counter() - t, int(peak) / 1024, 'torch' in sys.modules)")
    walls, rss, torch_loaded = [], [], set()
    for _ in range(5):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        walls.append(time.perf_counter() - started)
        rss.append(float(out[1]))
        torch_loaded.add(out[2])
    print("\n### torch-free runtime, digits MLP, 100 rows from CSV (5 fresh processes)\n")
    print("| process start to predictions (s, median) | resident memory (MB, max) | torch imported |")
    print("|---:|---:|---|")
    print(f"| {statistics.median(walls):.3f} | {max(rss):.0f} | {', '.join(sorted(torch_loaded))} |")


if __name__ == "__main__":
    main()
