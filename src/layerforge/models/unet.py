"""U-Net (Ronneberger et al. 2015): an encoder of convolution blocks, each halving the picture, a
decoder that doubles it back, each step joined to the encoder's maps of its size (the skip
connections), and a class score per pixel. With a pretrained encoder (``PretrainedUNet``), a
saved convolutional image model's maps are the encoder's levels.

Pictures of any height and width are padded at their bottom and right edges to a multiple of the
downsampling, and the scores cut back to the picture.
"""

from __future__ import annotations

import json

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


class PretrainedUNet(DenseHeaded):
    """A U-Net whose encoder is a pretrained convolutional image model (``transformers``' ResNet,
    ConvNeXt and their kin, read from local files): its maps at each stride (the last of each)
    are the levels; the decoder doubles the deepest back up, joining each level's maps (a 2x2
    transposed convolution where the next level is twice as large, bilinear scaling otherwise,
    then ``_Twice``), and at last the picture itself; the head classes each pixel.

    Args:
        inputs: an image (``Inputs`` of kind 'image') of the channels the encoder reads.
        output_size: the classes.
        encoder, architecture: the saved model's directory; its config (a trained run's, whose
            weights come from the run).
        norm, activation, dropout, head: see ``UNetConfig``.
    """

    def __init__(self, inputs: Inputs, output_size: int, *, encoder: str, architecture: dict | None, norm: str,
                 activation: str, dropout: float, head: list[int]):
        super().__init__(inputs)
        self.backbone = load_backbone(encoder, architecture, key="model.encoder")
        check_channels(self.backbone.config, inputs)
        pooler = getattr(self.backbone, "pooler", None)
        if isinstance(pooler, nn.Module) and any(True for _ in pooler.parameters()):
            self.backbone.pooler = None  # a trained pooling layer the maps never read: no dead weights
        widths, self.levels, self.scale = self._levels(inputs.channels)
        self.up, self.joined = nn.ModuleList(), nn.ModuleList()
        width = widths[-1]
        for skip, factor in zip(reversed(widths[:-1]), reversed(self.steps)):
            self.up.append(nn.ConvTranspose2d(width, skip, 2, stride=2) if factor == 2 else
                           nn.Conv2d(width, skip, 1))
            self.joined.append(_Twice(2 * skip, skip, norm, activation, dropout))
            width = skip
        self.top = _Twice(width + inputs.channels, width, norm, activation, dropout)  # the picture joined last
        self.head = nn.Sequential(*[layer for a, b in zip([width, *head], head)
                                    for layer in (nn.Linear(a, b), activations.get(activation))],
                                  nn.Linear(head[-1] if head else width, output_size))

    def _levels(self, channels: int) -> tuple[list[int], list[int], int]:
        """Each level's width, which hidden state it is (the last of each stride), and the
        largest stride (the picture's sides are padded to a multiple of it), found by running the
        encoder once on a blank picture."""
        side = 256
        was = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            states = self.backbone(pixel_values=torch.zeros(1, channels, side, side), output_hidden_states=True)
        self.backbone.train(was)
        maps = [(i, state) for i, state in enumerate(states.hidden_states) if state.dim() == 4]
        if not maps:
            raise SpecError("model.encoder: the model gives no maps (batch, channels, height, width); a U-Net's "
                            "encoder is a convolutional image model (ResNet, ConvNeXt)")
        last_of: dict[int, tuple[int, int]] = {}
        for i, state in maps:
            last_of[side // state.shape[-1]] = (i, state.shape[1])
        strides = sorted(last_of)
        self.steps = [b // a for a, b in zip(strides, strides[1:])]
        return [last_of[s][1] for s in strides], [last_of[s][0] for s in strides], strides[-1]

    def manifest_options(self) -> dict:
        """What model.json adds to the spec's options: the encoder's architecture."""
        return {"architecture": json.loads(self.backbone.config.to_json_string(use_diff=False))}

    @property
    def evaluation_rows(self) -> int:
        rows = max(8, min(1024, 2**22 // max(1, self.inputs.height * self.inputs.width * 32)))
        return 1 << (rows.bit_length() - 1)

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Each pixel's features (B, H, W, F), channels last for the dense head."""
        height, width = x.shape[-2:]
        x = F.pad(x, (0, (-width) % self.scale, 0, (-height) % self.scale))
        states = self.backbone(pixel_values=x, output_hidden_states=True).hidden_states
        levels = [states[i] for i in self.levels]
        y = levels[-1]
        for up, joined, skip in zip(self.up, self.joined, reversed(levels[:-1])):
            y = up(y) if isinstance(up, nn.ConvTranspose2d) else \
                up(F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            y = joined(torch.cat([y, skip], dim=1))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        y = self.top(torch.cat([y, x], dim=1))
        return y[:, :, :height, :width].permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class scores (B, classes, H, W) of every pixel."""
        return self.head(self.pooled(x, lengths)).permute(0, 3, 1, 2)


def build(config: UNetConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> UNet | PretrainedUNet:
    options = config.arguments()
    encoder, architecture = options.pop("encoder"), options.pop("architecture")
    if encoder is not None:
        options.pop("channels")
        return PretrainedUNet(inputs, output_size, encoder=encoder, architecture=architecture, **options)
    return UNet(inputs, output_size, **options)
