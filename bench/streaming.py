"""Streaming a table from its file against reading it into memory, on one generated Parquet file.

Modes, each run in its own fresh process and interleaved over rounds:

- ``hand``: a hand-written PyTorch loop: the whole file read with pandas, standardised, and
  trained by slicing tensors (the same MLP, batch and Adam);
- ``in memory``: ``layerforge train`` with ``data.streaming: false``;
- ``streamed``: ``layerforge train`` with ``data.streaming: true`` (workers: auto);
- ``streamed 0 workers``: the same, read inside the training loop.

Reported: training samples/s over the epochs after the first (the ``layerforge`` runs count their
training rows; validation is part of their epochs), the median of per-round ratios to the hand
loop, wall time from launch to a finished run, and peak resident memory of the process tree's
largest process (the DataLoader workers of a streamed run included).

    python bench/streaming.py [--rows 2000000] [--columns 64] [--epochs 3] [--rounds 3]
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

MODES = ("hand", "in memory", "streamed", "streamed 0 workers")
BATCH = 512
LAYERS = [64]

HAND = """
import json, sys, time
import numpy as np, pandas as pd, torch
path, epochs, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
frame = pd.read_parquet(path)
y = torch.as_tensor(pd.factorize(frame.pop("label"), sort=True)[0])
x = frame.to_numpy(np.float32)
x = torch.as_tensor((x - x.mean(0)) / x.std(0))
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], WIDTH), torch.nn.ReLU(), torch.nn.Linear(WIDTH, 2))
optimizer = torch.optim.Adam(model.parameters(), 1e-3)
seconds = []
for epoch in range(epochs):
    start = time.perf_counter()
    order = torch.randperm(len(y))
    for i in range(0, len(y), batch):
        index = order[i:i + batch]
        loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad(); loss.backward(); optimizer.step()
    seconds.append(time.perf_counter() - start)
print(json.dumps({"rows": len(y), "seconds": seconds}))
""".replace("WIDTH", str(LAYERS[0]))

LF = """
import json, sys
import layerforge as lf
spec = json.loads(sys.argv[1])
run = lf.train(spec, runs_dir=sys.argv[2])
print(json.dumps({"rows": run.manifest.rows["train"], "seconds": [r["seconds"] for r in run.history],
                  "accuracy": run.metrics["test"]["accuracy"]}))
"""


def write_file(path: Path, rows: int, columns: int, groups: int = 40) -> None:
    """A separable two-class table, written a row group at a time."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    weights = rng.normal(size=columns)
    writer = None
    for group in range(groups):
        n = rows * (group + 1) // groups - rows * group // groups
        x = rng.normal(size=(n, columns)).astype(np.float32)
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(columns)])
        frame["label"] = np.where(x @ weights + 0.3 * rng.normal(size=n) > 0, "yes", "no")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def measure(mode: str, path: Path, epochs: int, runs: Path) -> dict:
    if mode == "hand":
        command = [sys.executable, "-c", HAND, str(path), str(epochs), str(BATCH)]
    else:
        data = {"path": str(path), "target": "label", "streaming": mode != "in memory"}
        if mode == "streamed 0 workers":
            data["stream"] = {"workers": 0}
        spec = {"data": data, "model": {"layers": LAYERS}, "train": {"epochs": epochs, "batch_size": BATCH}}
        command = [sys.executable, "-c", LF, json.dumps(spec), str(runs)]
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{mode}: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    later = result["seconds"][1:] or result["seconds"]
    return {"samples_s": result["rows"] / statistics.median(later), "wall_s": wall,
            "peak_mb": int(done.stderr.strip().splitlines()[-1]) / 1024, "accuracy": result.get("accuracy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--columns", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.parquet"
        write_file(path, args.rows, args.columns)
        size = path.stat().st_size / 2**20
        print(f"{args.rows} rows x {args.columns} float32 columns + label: {size:.0f} MB of Parquet, "
              f"{args.rows * (args.columns + 1) * 8 / 2**20:.0f} MB as a DataFrame; MLP {LAYERS}, batch {BATCH}, "
              f"{args.epochs} epochs, {args.rounds} rounds", flush=True)
        results: dict[str, list[dict]] = {mode: [] for mode in modes}
        for round_ in range(args.rounds):
            for mode in modes:
                results[mode].append(measure(mode, path, args.epochs, Path(folder) / "runs"))
                print(f"  round {round_ + 1} {mode}: {results[mode][-1]}", flush=True)
    print("\n| mode | training samples/s | ratio to hand | wall s | peak RSS MB | test accuracy |")
    print("|---|---|---|---|---|---|")
    for mode in modes:
        rows = results[mode]
        ratio = "-"
        if "hand" in results:
            ratio = f"{statistics.median(r['samples_s'] / h['samples_s'] for r, h in zip(rows, results['hand'])):.2f}"
        accuracy = [r["accuracy"] for r in rows if r["accuracy"] is not None]
        shown = f"{statistics.median(accuracy):.4f}" if accuracy else "-"
        print(f"| {mode} | {statistics.median(r['samples_s'] for r in rows):,.0f} | {ratio} | "
              f"{statistics.median(r['wall_s'] for r in rows):.1f} | "
              f"{statistics.median(r['peak_mb'] for r in rows):.0f} | {shown} |")

if __name__ == "__main__":
    main()
