"""U-Net (Ronneberger et al. 2015): an encoder of convolution blocks, each halving the picture, a
decoder that doubles it back, each step joined to the encoder's maps of its size (the skip
connections), and a class score per pixel.

Pictures of any height and width are padded at their bottom and right edges to a multiple of the
downsampling, and the scores cut back to the picture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import activations
from .autoencoder import _norm
from .configs import UNetConfig
from .inputs import Inputs
from .protocol import DenseHeaded


class _Twice(nn.Module):
    """Two 3x3 convolutions, each followed by a norm and the activation, then dropout."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, activation: str, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in ((in_channels, out_channels), (out_channels, out_channels)):
            layers += [nn.Conv2d(a, b, 3, padding=1, bias=norm == "none"), _norm(norm, 2, b),
                       activations.get(activation)]
        self.layers = nn.Sequential(*layers, nn.Dropout2d(dropout) if dropout > 0 else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class UNet(DenseHeaded):
    """A U-Net: ``channels`` gives each level's width, from the full-size picture down (the last
    is the bottleneck); the head is dense layers applied to each pixel's features (``head``) and
    its class scores.

    Args:
        inputs: an image (``Inputs`` of kind 'image').
        output_size: the classes.
        channels, norm, activation, dropout, head: see ``UNetConfig``.

    Example:
        >>> inputs = Inputs(kind="image", channels=3, height=30, width=44)
        >>> model = UNet(inputs, 4, **UNetConfig(channels=[8, 16, 32]).arguments())
        >>> model(torch.zeros(2, 3, 30, 44)).shape
        torch.Size([2, 4, 30, 44])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, channels: list[int], norm: str, activation: str,
                 dropout: float, head: list[int]):
        super().__init__(inputs)
        self.down = nn.ModuleList()
        width = inputs.channels
        for size in channels:
            self.down.append(_Twice(width, size, norm, activation, dropout))
            width = size
        self.up, self.joined = nn.ModuleList(), nn.ModuleList()
        for size in reversed(channels[:-1]):
            self.up.append(nn.ConvTranspose2d(width, size, 2, stride=2))
            self.joined.append(_Twice(2 * size, size, norm, activation, dropout))
            width = size
        self.scale = 2 ** (len(channels) - 1)  # the picture's sides must divide by this
        self.head = nn.Sequential(*[layer for a, b in zip([width, *head], head)
                                    for layer in (nn.Linear(a, b), activations.get(activation))],
                                  nn.Linear(head[-1] if head else width, output_size))

    @property
    def evaluation_rows(self) -> int:
        pixels = self.inputs.height * self.inputs.width * self.down[0].layers[0].out_channels
        rows = max(8, min(1024, 2**22 // max(1, pixels)))
        return 1 << (rows.bit_length() - 1)

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Each pixel's features (B, H, W, F), channels last for the dense head."""
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
        return x[:, :, :height, :width].permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class scores (B, classes, H, W) of every pixel."""
        return self.head(self.pooled(x, lengths)).permute(0, 3, 1, 2)


def build(config: UNetConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> UNet:
    return UNet(inputs, output_size, **config.arguments())
