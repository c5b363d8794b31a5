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
from torch import nn

from .configs import CenterNetConfig
from .inputs import Inputs
from .protocol import DenseHeaded
from .unet import UNet, dense_head

BOX_NUMBERS = 4  # per cell after the heatmaps: log width, log height, centre x, centre y
PRIOR = 0.1  # the heatmaps' first probability (focal loss's start: the background dominates)


class CenterNet(UNet):
    """Heatmaps, box sizes and centres (B, classes + 4, H / stride, W / stride): a U-Net whose
    decoder stops at ``stride``, with a dense layer of ``head_channels`` on each cell.

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
        DenseHeaded.__init__(self, inputs)
        width = self._levels(channels, norm, activation, 0.0, stride)
        self.head = dense_head(width, [head_channels], activation, output_size)
        with torch.no_grad():  # the heatmaps start at the prior; the boxes at about 16 pixels
            self.head[-1].bias[: output_size - BOX_NUMBERS] = math.log(PRIOR / (1 - PRIOR))
            self.head[-1].bias[output_size - BOX_NUMBERS : output_size - 2] = math.log(16.0)


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
