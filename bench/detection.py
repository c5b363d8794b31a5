"""Detection: the examples in examples/detection/ over several seeds, their mAP computed two ways,
and the speed of a CenterNet's training by layerforge against a hand-written PyTorch loop.

- ``shapes_centernet``: 1,500 scenes of shapes (64x64) with the box of each shape, a tenth held
  out at random;
- ``coins_centernet``: crops of scikit-image's coins photograph with each coin's box; the test
  crops are the part of the photograph no training crop overlaps.

Prints, per seed as it ends, the test mAP@[.5:.95], mAP@0.5 and mAP@0.75 by layerforge, and the
same three by pycocotools' COCOeval on the same boxes (the largest difference of the two), and
the wall time of training; then the medians over the seeds. Then the speed: the network
``model.type: centernet, channels: [16, 32, 64], stride: 4, head_channels: 32`` on 1,000 shape
scenes, batch 32, AdamW 3e-3, CenterNet's loss, trained for ``--epochs`` epochs by a hand-written
loop (tensor slicing, the same loss) and by ``lf.Trainer``, interleaved over ``--rounds`` rounds
in one process: samples/s after the first epoch, and the median of the rounds' ratios.

Run: ``python bench/detection.py [--seeds 3] [--examples shapes_centernet,coins_centernet] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from pictures_speed import compared, hand_epochs, trainer_epochs

import layerforge as lf

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "detection"
METRICS = ("map", "map_50", "map_75")


def cocoeval(found: list[np.ndarray], true: list[np.ndarray], classes: int) -> dict[str, float]:
    """pycocotools' COCOeval of the boxes (its bbox AP at [.5:.95], .5 and .75)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def box(b):
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    truth = [(i, b) for i, t in enumerate(true) for b in t]
    record = {"images": [{"id": i} for i in range(len(true))], "categories": [{"id": k} for k in range(classes)],
              "annotations": [{"id": n + 1, "image_id": i, "category_id": int(b[4]), "bbox": box(b), "iscrowd": 0,
                               "area": float((b[2] - b[0]) * (b[3] - b[1]))} for n, (i, b) in enumerate(truth)]}
    answers = [{"image_id": i, "category_id": int(b[4]), "bbox": box(b), "score": float(b[5])}
               for i, f in enumerate(found) for b in f]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = record
        coco.createIndex()
        scoring = COCOeval(coco, coco.loadRes(answers), "bbox")
        scoring.evaluate()
        scoring.accumulate()
        scoring.summarize()
    return dict(zip(METRICS, (float(v) for v in scoring.stats[:3])))


def measured(name: str, seed: int, runs: Path) -> dict:
    """The example trained with ``seed``: its test metrics, pycocotools' on the same boxes, and
    the seconds of training."""
    import torch

    from layerforge.decodings import Boxes
    from layerforge.models.protocol import predict_outputs

    spec = lf.load_spec(EXAMPLES / f"{name}.yaml", overrides=[f"seed={seed}", "train.report=false"])
    started = time.perf_counter()
    run = lf.train(spec, runs_dir=runs, progress=False)
    seconds = time.perf_counter() - started
    inputs, y = run.held_out("test")
    outputs = predict_outputs(run.model, tuple(torch.as_tensor(np.asarray(a)) for a in inputs)).float().numpy()
    found = run.task.decoding().detections(outputs, Boxes.SCORED)  # what the task's scores read
    coco = cocoeval(found, run.task.truths(y), len(run.task.classes))
    return {**run.metrics["test"], "coco": coco, "seconds": seconds}


def _network():
    import torch

    from layerforge.models import Inputs, build_model
    from layerforge.models.configs import CenterNetConfig

    torch.manual_seed(0)
    config = CenterNetConfig(channels=[16, 32, 64], stride=4, head_channels=32)
    return build_model(config, Inputs(kind="image", channels=3, height=64, width=64), 3 + 4)


def speed(rounds: int, epochs: int) -> None:
    import torch

    from layerforge.data.scenes import SHAPES, drawn
    from layerforge.tasks.detection import DetectionTask, centernet_loss, padded_boxes

    pictures, _, boxes = drawn(1000, size=64, seed=0)
    x, y = torch.as_tensor(pictures), torch.as_tensor(padded_boxes(boxes, 3))

    def hand():
        model = _network()
        return hand_epochs(model, torch.optim.AdamW(model.parameters(), lr=3e-3),
                           lambda outputs, y: centernet_loss(outputs, y, [64, 64], 3), x, y, epochs)

    def trainer():
        return trainer_epochs(DetectionTask(list(SHAPES), [64, 64]), _network(), x, y, epochs,
                              {"name": "adamw", "lr": 3e-3})

    compared(f"CenterNet [16, 32, 64] stride 4 on 1,000 scenes 64x64, batch 32, {epochs} epochs", len(x), rounds,
             hand, trainer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--examples", default="shapes_centernet,coins_centernet")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name in [n for n in args.examples.split(",") if n]:
            print(f"\n{name}: seed, mAP, mAP@0.5, mAP@0.75 (layerforge) | the same by pycocotools; train s", flush=True)
            results = []
            for seed in range(args.seeds):
                found = measured(name, seed, Path(folder))
                results.append(found)
                ours = " ".join(f"{found[m]:.4f}" for m in METRICS)
                theirs = " ".join(f"{found['coco'][m]:.4f}" for m in METRICS)
                gap = max(abs(found[m] - found["coco"][m]) for m in METRICS)
                print(f"  seed {seed}: {ours} | {theirs} (largest difference {gap:.1e}); {found['seconds']:.0f} s",
                      flush=True)
            median = " ".join(f"{float(np.median([r[m] for r in results])):.4f}" for m in METRICS)
            print(f"  median: {median}", flush=True)
    if args.rounds:
        speed(args.rounds, args.epochs)


if __name__ == "__main__":
    main()
