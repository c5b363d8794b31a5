"""CenterNet (Zhou et al. 2019, "Objects as Points"): a detector without anchors. Each class has
a heatmap whose peaks are the centres of its boxes; at each cell the network also says the width
and height of the box centred there and where in the cell the centre lies. Boxes are read from
the peaks (``layerforge.decodings.Boxes``), with non-maximum suppression after.

The maps come from a U-Net's encoder and a decoder that stops at ``stride`` (a feature
pyramid's top-down path with its lateral joins); the outputs, per cell, are ``classes + 4``
numbers: the heatmaps' logits, the box's log width and log height in pixels, and the logits of
the centre's place in the cell (x then y).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import activations
from .configs import CenterNetConfig
from .inputs import Inputs
from .protocol import DenseHeaded
from .unet import _Twice

BOX_NUMBERS = 4  # per cell after the heatmaps: log width, log height, centre x, centre y
PRIOR = 0.1  # the heatmaps' first probability (focal loss's start: the background dominates)


class CenterNet(DenseHeaded):
    """Heatmaps, box sizes and centres (B, classes + 4, H / stride, W / stride).

    Args:
        inputs: an image (``Inputs`` of kind 'image').
        output_size: the classes + 4.
        channels, stride, head_channels, norm, activation: see ``CenterNetConfig``.

    Example:
        >>> inputs = Inputs(kind="image", channels=3, height=30, width=44)
        >>> model = CenterNet(inputs, 3 + 4, channels=[8, 16, 16], stride=4, head_channels=8, norm="batch",
        ...                   activation="relu")
        >>> model(torch.zeros(2, 3, 30, 44)).shape
        torch.Size([2, 7, 8, 11])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, channels: list[int], stride: int, head_channels: int,
                 norm: str, activation: str):
        super().__init__(inputs)
        self.stride = stride
        self.down = nn.ModuleList()
        width = inputs.channels
        for size in channels:
            self.down.append(_Twice(width, size, norm, activation, 0.0))
            width = size
        self.up, self.joined = nn.ModuleList(), nn.ModuleList()
        for size in list(reversed(channels[:-1]))[: len(channels) - 1 - int(math.log2(stride))]:
            self.up.append(nn.ConvTranspose2d(width, size, 2, stride=2))
            self.joined.append(_Twice(2 * size, size, norm, activation, 0.0))
            width = size
        self.scale = 2 ** (len(channels) - 1)  # the picture's sides are padded to a multiple of this
        self.head = nn.Sequential(nn.Linear(width, head_channels), activations.get(activation),
                                  nn.Linear(head_channels, output_size))
        with torch.no_grad():  # the heatmaps start at the prior; the boxes at about 16 pixels
            self.head[-1].bias[: output_size - BOX_NUMBERS] = math.log(PRIOR / (1 - PRIOR))
            self.head[-1].bias[output_size - BOX_NUMBERS : output_size - 2] = math.log(16.0)

    @property
    def evaluation_rows(self) -> int:
        pixels = self.inputs.height * self.inputs.width * self.down[0].layers[0].out_channels
        rows = max(8, min(1024, 2**22 // max(1, pixels)))
        return 1 << (rows.bit_length() - 1)

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Each cell's features (B, H / stride, W / stride, F), channels last for the head."""
        height, width = x.shape[-2:]
        x = F.pad(x, (0, (-width) % self.scale, 0, (-height) % self.scale))
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for up, joined, skip in zip(self.up, self.joined, reversed(skips[:-1])):
            x = joined(torch.cat([up(x), skip], dim=1))
        cells = (-(-height // self.stride), -(-width // self.stride))
        return x[:, :, : cells[0], : cells[1]].permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Per cell: each class's heatmap logit, the box's log width and height, its centre's
        logits (B, classes + 4, cells down, cells across)."""
        return self.head(self.pooled(x, lengths)).permute(0, 3, 1, 2)


class Heatmaps(nn.Module):
    """A detector seen as one row of numbers per picture: each class's heatmap logits at every
    cell, flattened (what a box's score is read from, which explanations attribute)."""

    def __init__(self, network: nn.Module, classes: int):
        super().__init__()
        self.network, self.classes = network, classes

    def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        return self.network(x, *extra)[:, : self.classes].flatten(1)

    def token_embedding(self) -> None:
        return None  # it reads pictures


def build(config: CenterNetConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> CenterNet:
    return CenterNet(inputs, output_size, **config.arguments())
