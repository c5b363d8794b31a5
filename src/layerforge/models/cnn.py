"""Convolutional networks, 1-D (sequences) and 2-D (images): conv blocks, global pooling, dense head."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import SpecError
from ..nn import activations
from ..nn.layers import dense_head, length_mask, masked_mean
from .configs import CNNConfig
from .inputs import Inputs
from .protocol import DenseHeaded

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_POOL = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d}


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of (B, C, ...) feature maps."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class ConvBlock(nn.Module):
    """conv -> norm -> activation (+ residual) -> pool -> dropout."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, *, kernel_size: int, stride: int,
                 padding: int | str, dilation: int, pool: str, pool_size: int, norm: str, activation: str,
                 dropout: float, residual: bool):
        super().__init__()
        self.conv = _CONV[dims](in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                dilation=dilation, bias=norm == "none")
        if norm == "batch":
            self.norm = _BATCH_NORM[dims](out_channels)
        elif norm == "layer":
            self.norm = ChannelLayerNorm(out_channels)
        else:
            self.norm = nn.Identity()
        self.activation = activations.get(activation)
        self.shortcut = None
        if residual:
            same = in_channels == out_channels and stride == 1
            self.shortcut = nn.Identity() if same else _CONV[dims](in_channels, out_channels, 1, stride=stride)
        self.pool = _POOL[(pool, dims)](pool_size, ceil_mode=True) if pool != "none" else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.downsampling = stride * (pool_size if pool != "none" else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S) -> (B, C_out, *S')
        y = self.norm(self.conv(x))
        if self.shortcut is not None:
            shortcut = self.shortcut(x)
            if shortcut.shape == y.shape:  # 'valid' padding shortens y; then skip the shortcut
                y = y + shortcut
        return self.dropout(self.pool(self.activation(y)))


def _check_fits(extent: list[int], kernels: list[int], stride: int, padding: int | str, dilation: int, pool: str,
                pool_size: int) -> list[int]:
    """Follow the length (or height and width) of the data through the blocks; a kernel longer
    than what its convolution reads is a spec error naming the key. Returns the last extent."""
    unit = "steps" if len(extent) == 1 else "pixels"
    for block, kernel in enumerate(kernels, 1):
        span = dilation * (kernel - 1) + 1
        if padding != "same":
            pad = 0 if padding == "valid" else int(padding)
            if any(n + 2 * pad < span for n in extent):
                shown = "x".join(map(str, extent))
                raise SpecError(f"model.kernel_size: convolution {block} reads {shown} {unit}, shorter than its "
                                f"kernel of {kernel}" + (f" at dilation {dilation}" if dilation > 1 else "")
                                + "; use a smaller kernel_size, padding: same, or fewer blocks (model.channels)")
            extent = [(n + 2 * pad - span) // stride + 1 for n in extent]
        else:
            extent = [-(-n // stride) for n in extent]
        if pool != "none":
            extent = [-(-n // pool_size) for n in extent]
    return extent


class CNN(DenseHeaded):
    """Convolution blocks, a readout (global average pooling, or the last feature maps
    flattened) and a dense head; 1-D for sequences (B, C, L), 2-D for images (B, C, H, W).

    Args:
        inputs: what one row holds (a sequence or an image).
        output_size: logits or regression outputs.
        channels, kernel_size, ..., init: see ``CNNConfig`` (the spec's ``model`` keys).

    Example:
        >>> inputs = Inputs(kind="sequence", channels=1, length=40)
        >>> model = CNN(inputs, 10, **CNNConfig(channels=[8, 16]).arguments())
        >>> model(torch.zeros(4, 1, 40)).shape
        torch.Size([4, 10])
    """

    def __init__(self, inputs: Inputs, output_size: int, *, channels: list[int], kernel_size: int | list[int],
                 stride: int, padding: int | str, dilation: int, pool: str, pool_size: int, norm: str,
                 activation: str, dropout: float, residual: bool, head: list[int], init: str,
                 readout: str):
        super().__init__(inputs)
        dims = inputs.spatial_dims
        kernels = kernel_size if isinstance(kernel_size, list) else [kernel_size] * len(channels)
        last = _check_fits(list(inputs.shape[1:]), kernels, stride, padding, dilation, pool, pool_size)
        if readout == "flatten" and inputs.variable_length:
            raise SpecError("model.readout: flatten needs rows of one size, and these sequences vary in length; "
                            "use readout: mean")
        sizes = [inputs.channels, *channels]
        self.dims, self.readout = dims, readout
        width = sizes[-1] * (math.prod(last) if readout == "flatten" else 1)
        self.blocks = nn.ModuleList(
            ConvBlock(dims, a, b, kernel_size=k, stride=stride, padding=padding, dilation=dilation, pool=pool,
                      pool_size=pool_size, norm=norm, activation=activation, dropout=dropout, residual=residual)
            for a, b, k in zip(sizes, sizes[1:], kernels)
        )
        self.head = dense_head(width, list(head), output_size, activation, dropout, init)
        self._first_maps = channels[0] * math.prod(inputs.shape[1:])  # numbers per row after the first convolution

    @property
    def evaluation_rows(self) -> int:
        """Rows whose first feature maps fill at most about 16 MB, a power of two: large batches
        of large maps leave the CPU's caches (on 28x28 images, 128 rows evaluate 1.7x faster
        than 1024), and the convolution kernels run odd batch sizes slower (857 rows of 28x28
        images in batches of 167 took about 1.1x the time of batches of 128)."""
        rows = max(32, min(1024, 2**22 // max(1, self._first_maps)))
        return 1 << (rows.bit_length() - 1)

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        for block in self.blocks:  # (B, C, *S)
            x = block(x)
            if lengths is not None:
                lengths = torch.div(lengths + block.downsampling - 1, block.downsampling, rounding_mode="floor")
        if self.readout == "flatten":
            return x.flatten(1)  # (B, C * prod(S))
        if self.dims == 1:
            return masked_mean(x.transpose(1, 2), length_mask(lengths, x.shape[-1]), dim=1)  # (B, L, C) -> (B, C)
        return x.mean(dim=(-2, -1))  # (B, C)


def build(config: CNNConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> CNN:
    return CNN(inputs, output_size, **config.arguments())
