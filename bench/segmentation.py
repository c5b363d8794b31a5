"""Segmentation: the examples in examples/segmentation/ over several seeds, and the speed of a
U-Net's training by layerforge against a hand-written PyTorch loop of the same network.

- ``shapes_unet``: 1,500 scenes of shapes in random colours on striped, noisy backgrounds (64x64),
  a tenth of them held out at random;
- ``coins_unet``: crops of scikit-image's coins photograph with its watershed masks; the test
  crops are the part of the photograph no training crop overlaps.

Prints the median over the seeds of the test mean IoU, Dice (the classes but the background)
and pixel accuracy, each seed's mean IoU, and the wall time of training. Then the speed: the
network ``model.type: unet, channels: [16, 32, 64]`` on 1,000 shape scenes, batch 32, Adam
1e-3, the pixels' cross-entropy plus the soft Dice loss, trained for ``--epochs`` epochs by a
hand-written loop (tensor slicing, the same loss) and by ``lf.Trainer``, interleaved over
``--rounds`` rounds in one process: samples/s after the first epoch, and the median of the
rounds' ratios.

Run: ``python bench/segmentation.py [--seeds 3] [--examples shapes_unet,coins_unet] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from pictures_speed import compared, hand_epochs, trainer_epochs

import layerforge as lf

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "segmentation"


def measured(name: str, seed: int, runs: Path) -> dict:
    spec = lf.load_spec(EXAMPLES / f"{name}.yaml", overrides=[f"seed={seed}", "train.report=false"])
    started = time.perf_counter()
    run = lf.train(spec, runs_dir=runs, progress=False)
    return {**run.metrics["test"], "seconds": time.perf_counter() - started}


def _network():
    import torch

    from layerforge.models import Inputs, build_model
    from layerforge.models.configs import UNetConfig

    torch.manual_seed(0)
    return build_model(UNetConfig(channels=[16, 32, 64]), Inputs(kind="image", channels=3, height=64, width=64), 4)


def speed(rounds: int, epochs: int) -> None:
    import torch
    import torch.nn.functional as F

    from layerforge.data.scenes import CLASSES, scenes
    from layerforge.tasks.segmentation import SegmentationTask
    from layerforge.training import losses

    pictures, masks = scenes(1000, size=64, seed=0)
    x, y = torch.as_tensor(pictures), torch.as_tensor(masks.astype(np.int64))
    dice = losses.get("dice", "segmentation")

    def hand():
        model = _network()
        return hand_epochs(model, torch.optim.Adam(model.parameters(), lr=1e-3),
                           lambda outputs, y: F.cross_entropy(outputs, y) + dice(outputs, y), x, y, epochs)

    def trainer():
        return trainer_epochs(SegmentationTask(list(CLASSES)), _network(), x, y, epochs, {"name": "adam", "lr": 1e-3})

    compared(f"U-Net [16, 32, 64] on 1,000 scenes 64x64, batch 32, {epochs} epochs", len(x), rounds, hand, trainer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--examples", default="shapes_unet,coins_unet")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'example':<12} {'mean_iou':>8} {'dice':>7} {'pixels':>7}  mean_iou per seed; train s")
    with tempfile.TemporaryDirectory() as folder:
        for name in [n for n in args.examples.split(",") if n]:
            results = [measured(name, seed, Path(folder)) for seed in range(args.seeds)]
            median = {key: float(np.median([r[key] for r in results])) for key in ("mean_iou", "dice",
                                                                                     "pixel_accuracy")}
            seeds = " ".join(f"{r['mean_iou']:.4f}" for r in results)
            train = " ".join(f"{r['seconds']:.0f}" for r in results)
            print(f"{name:<12} {median['mean_iou']:>8.4f} {median['dice']:>7.4f} {median['pixel_accuracy']:>7.4f}  "
                  f"{seeds}; {train}", flush=True)
    if args.rounds:
        speed(args.rounds, args.epochs)


if __name__ == "__main__":
    main()
