"""U-Net (Ronneberger et al. 2015): an encoder of convolution blocks, each halving the picture, a
decoder that doubles it back, each step joined to the encoder's maps of its size (the skip
connections), and a class score per pixel. With a pretrained encoder, a saved convolutional
image model's maps are the encoder's levels.

Pictures of any height and width are padded at their bottom and right edges to a multiple of the
downsampling, and the scores cut back to the picture.
"""

from __future__ import annotations

import json
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from ..nn import activations
from .autoencoder import _norm
from .configs import UNetConfig
from .inputs import Inputs
from .pretrained import check_channels, load_backbone
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


def dense_head(width: int, head: list[int], activation: str, output_size: int) -> nn.Sequential:
    """Dense layers of ``head`` sizes (each followed by the activation), then the outputs."""
    return nn.Sequential(*[layer for a, b in zip([width, *head], head)
                           for layer in (nn.Linear(a, b), activations.get(activation))],
                         nn.Linear(head[-1] if head else width, output_size))


class UNet(DenseHeaded):
    """A U-Net: ``channels`` gives each level's width, from the full-size picture down (the last
    is the bottleneck); the head is dense layers applied to each pixel's features (``head``) and
    its class scores.

    With ``encoder``, a pretrained convolutional image model (``transformers``' ResNet, ConvNeXt
    and their kin, read from local files) is the encoder: its maps at each stride (the last of
    each) are the levels; the decoder doubles the deepest back up, joining each level's maps (a
    2x2 transposed convolution where the next level is twice as large, a 1x1 convolution of the
    maps scaled bilinearly otherwise), and at last the picture itself.

    Args:
        inputs: an image (``Inputs`` of kind 'image').
        output_size: the classes.
        channels, norm, activation, dropout, head: see ``UNetConfig``.
        encoder, architecture: the pretrained encoder's directory and its config (a trained
            run's, whose weights come from the run), or None.

    Example:
        >>> inputs = Inputs(kind="image", channels=3, height=30, width=44)
        >>> model = UNet(inputs, 4, **UNetConfig(channels=[8, 16, 32]).arguments())
        >>> model(torch.zeros(2, 3, 30, 44)).shape
        torch.Size([2, 4, 30, 44])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, channels: list[int], norm: str, activation: str,
                 dropout: float, head: list[int], encoder: str | None, architecture: dict | None):
        super().__init__(inputs)
        if encoder is None:
            width = self._levels(channels, norm, activation, dropout)
        else:
            width = self._pretrained_levels(encoder, architecture, norm, activation, dropout)
        self.head = dense_head(width, head, activation, output_size)

    def _levels(self, channels: list[int], norm: str, activation: str, dropout: float, stride: int = 1) -> int:
        """The encoder's blocks (``down``), and the decoder's (``up``, ``joined``) back up to the
        level whose cells are ``stride`` pixels wide; the width of the decoder's last maps."""
        self.backbone = None
        self.down = nn.ModuleList()
        width = self.inputs.channels
        for size in channels:
            self.down.append(_Twice(width, size, norm, activation, dropout))
            width = size
        self.up, self.joined = nn.ModuleList(), nn.ModuleList()
        for size in list(reversed(channels[:-1]))[: len(channels) - 1 - int(math.log2(stride))]:
            self.up.append(nn.ConvTranspose2d(width, size, 2, stride=2))
            self.joined.append(_Twice(2 * size, size, norm, activation, dropout))
            width = size
        self.scale = 2 ** (len(channels) - 1)  # the picture's sides are padded to a multiple of this
        self.stride = stride
        return width

    def _pretrained_levels(self, encoder: str, architecture: dict | None, norm: str, activation: str,
                           dropout: float) -> int:
        """The pretrained encoder (``backbone``), which of its hidden states are the levels,
        the decoder back up to the picture, and the block that joins the picture last."""
        self.backbone = load_backbone(encoder, architecture, key="model.encoder")
        check_channels(self.backbone.config, self.inputs)
        pooler = getattr(self.backbone, "pooler", None)
        if isinstance(pooler, nn.Module) and any(True for _ in pooler.parameters()):
            self.backbone.pooler = None  # a trained pooling layer the maps never read: no dead weights
        widths, steps = self._encoder_maps()
        self.up, self.joined = nn.ModuleList(), nn.ModuleList()
        width = widths[-1]
        for skip, factor in zip(reversed(widths[:-1]), reversed(steps)):
            self.up.append(nn.ConvTranspose2d(width, skip, 2, stride=2) if factor == 2 else nn.Conv2d(width, skip, 1))
            self.joined.append(_Twice(2 * skip, skip, norm, activation, dropout))
            width = skip
        self.top = _Twice(width + self.inputs.channels, width, norm, activation, dropout)  # the picture, joined last
        self.stride = 1
        return width

    def _encoder_maps(self) -> tuple[list[int], list[int]]:
        """Each level's width and how much larger each level is than the next, found by running
        the encoder once on a blank picture; sets which hidden states are the levels (the last
        of each stride) and the largest stride (the picture's sides are padded to a multiple)."""
        side = 256
        was = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            states = self.backbone(pixel_values=torch.zeros(1, self.inputs.channels, side, side),
                                   output_hidden_states=True)
        self.backbone.train(was)
        maps = [(i, state) for i, state in enumerate(states.hidden_states) if state.dim() == 4]
        if not maps:
            raise SpecError("model.encoder: the model gives no maps (batch, channels, height, width); a U-Net's "
                            "encoder is a convolutional image model (ResNet, ConvNeXt)")
        last_of: dict[int, tuple[int, int]] = {}
        for i, state in maps:
            last_of[side // state.shape[-1]] = (i, state.shape[1])
        strides = sorted(last_of)
        self.levels, self.scale = [last_of[s][0] for s in strides], strides[-1]
        return [last_of[s][1] for s in strides], [b // a for a, b in zip(strides, strides[1:])]

    def manifest_options(self) -> dict:
        """What model.json adds to the spec's options: a pretrained encoder's architecture."""
        if self.backbone is None:
            return {}
        return {"architecture": json.loads(self.backbone.config.to_json_string(use_diff=False))}

    @property
    def evaluation_rows(self) -> int:
        first = 32 if self.backbone is not None else self.down[0].layers[0].out_channels
        rows = max(8, min(1024, 2**22 // max(1, self.inputs.height * self.inputs.width * first)))
        return 1 << (rows.bit_length() - 1)

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Each cell's features (B, H / stride, W / stride, F; a cell is a pixel but for a
        decoder that stops early), channels last for the dense head."""
        height, width = x.shape[-2:]
        x = F.pad(x, (0, (-width) % self.scale, 0, (-height) % self.scale))
        if self.backbone is not None:
            return self._decoded(x)[:, :, :height, :width].permute(0, 2, 3, 1)
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

    def _decoded(self, x: torch.Tensor) -> torch.Tensor:
        """The pretrained encoder's levels of a padded picture, joined back up to it."""
        states = self.backbone(pixel_values=x, output_hidden_states=True).hidden_states
        levels = [states[i] for i in self.levels]
        y = levels[-1]
        for up, joined, skip in zip(self.up, self.joined, reversed(levels[:-1])):
            y = up(y) if isinstance(up, nn.ConvTranspose2d) else \
                up(F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            y = joined(torch.cat([y, skip], dim=1))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.top(torch.cat([y, x], dim=1))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The outputs of every cell (B, outputs, H / stride, W / stride): a U-Net's class scores
        of every pixel."""
        return self.head(self.pooled(x, lengths)).permute(0, 3, 1, 2)


def build(config: UNetConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> UNet:
    return UNet(inputs, output_size, **config.arguments())
