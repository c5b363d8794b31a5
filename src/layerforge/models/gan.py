"""Generative adversarial networks: a generator from random codes (and a class) to rows, and a
discriminator that scores rows as real or generated.

Conditioning: the generator reads a learned embedding of the class next to its code; the
discriminator adds a projection term ``<embed(class), features>`` to its score.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ..nn import activations
from .mlp import DenseBlock


def _maybe_spectral(layer: nn.Module, enabled: bool) -> nn.Module:
    return _spectral_norm(layer) if enabled else layer


class _Conditioning(nn.Module):
    """A learned vector per class (or nothing when ``num_classes`` is 0)."""

    def __init__(self, num_classes: int, size: int):
        super().__init__()
        self.embedding = nn.Embedding(num_classes, size) if num_classes else None

    def forward(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        if self.embedding is None:
            return None
        if labels is None:
            raise ValueError("this model is conditional: give the class of every row")
        return self.embedding(labels)


class MLPGenerator(nn.Module):
    """Code (+ class embedding) -> dense blocks -> a row of ``output_shape``."""

    def __init__(self, latent_size: int, hidden_sizes: list[int], output_shape: list[int], *, num_classes: int = 0,
                 activation: str = "relu", norm: str = "batch"):
        super().__init__()
        self.condition = _Conditioning(num_classes, latent_size)
        sizes = [latent_size * (2 if num_classes else 1), *hidden_sizes]
        self.blocks = nn.Sequential(*(DenseBlock(a, b, activation, norm, 0.0) for a, b in zip(sizes, sizes[1:])))
        self.out = nn.Linear(sizes[-1], math.prod(output_shape))
        self.output_shape = list(output_shape)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        condition = self.condition(labels)
        h = z if condition is None else torch.cat([z, condition], dim=1)  # (B, K) or (B, 2K)
        return self.out(self.blocks(h)).view(len(z), *self.output_shape)


class ConvGenerator(nn.Module):
    """DCGAN-style: code (+ class embedding) -> (C0, H/2^n, W/2^n) -> n transposed convolutions,
    each doubling height and width -> a 3x3 convolution to the image channels."""

    def __init__(self, latent_size: int, channels: list[int], output_shape: list[int], *, num_classes: int = 0,
                 activation: str = "relu", norm: str = "batch"):
        super().__init__()
        image_channels, height, width = output_shape
        factor = 2 ** len(channels)
        self.start = [channels[0], height // factor, width // factor]
        self.condition = _Conditioning(num_classes, latent_size)
        self.project = nn.Sequential(
            nn.Linear(latent_size * (2 if num_classes else 1), math.prod(self.start)),
            nn.BatchNorm1d(math.prod(self.start)) if norm == "batch" else nn.Identity(),
            activations.get(activation),
        )
        layers: list[nn.Module] = []
        for i, c_in in enumerate(channels):
            c_out = channels[min(i + 1, len(channels) - 1)]
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1),
                       nn.BatchNorm2d(c_out) if norm == "batch" else nn.GroupNorm(1, c_out) if norm == "layer"
                       else nn.Identity(),
                       activations.get(activation)]
        layers.append(nn.Conv2d(channels[-1], image_channels, 3, padding=1))
        self.blocks = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        condition = self.condition(labels)
        h = z if condition is None else torch.cat([z, condition], dim=1)
        return self.blocks(self.project(h).view(len(z), *self.start))  # (B, C0, h0, w0) -> (B, C, H, W)


class _Critic(nn.Module):
    """Features -> one score per row, plus the class projection when conditional."""

    def __init__(self, features: nn.Module, width: int, num_classes: int, spectral: bool):
        super().__init__()
        self.features = features
        self.score = _maybe_spectral(nn.Linear(width, 1), spectral)
        self.condition = _Conditioning(num_classes, width)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)  # (B, width)
        score = self.score(h).squeeze(1)
        condition = self.condition(labels)
        return score if condition is None else score + (condition * h).sum(dim=1)


def mlp_discriminator(input_shape: list[int], hidden_sizes: list[int], *, num_classes: int = 0,
                      activation: str = "leaky_relu", dropout: float = 0.0, spectral_norm: bool = False) -> _Critic:
    """Dense layers (no normalisation, which would mix the rows of a batch) to a score per row."""
    sizes = [math.prod(input_shape), *hidden_sizes]
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(sizes, sizes[1:]):
        layers += [_maybe_spectral(nn.Linear(a, b), spectral_norm), activations.get(activation)]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return _Critic(nn.Sequential(*layers), sizes[-1], num_classes, spectral_norm)


def conv_discriminator(input_shape: list[int], channels: list[int], *, num_classes: int = 0,
                       activation: str = "leaky_relu", dropout: float = 0.0, spectral_norm: bool = False) -> _Critic:
    """Strided 4x4 convolutions, each halving height and width, then flatten to a score."""
    image_channels, height, width = input_shape
    layers: list[nn.Module] = []
    for c_in, c_out in zip([image_channels, *channels], channels):
        layers += [_maybe_spectral(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), spectral_norm),
                   activations.get(activation)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        height, width = height // 2, width // 2
    layers.append(nn.Flatten())
    return _Critic(nn.Sequential(*layers), channels[-1] * height * width, num_classes, spectral_norm)


class GAN(nn.Module):
    """A generator, a discriminator and, with ``ema``, a moving average of the generator's weights
    that is used for sampling (it gives smoother samples than the last training step).

    Args:
        generator: ``(z, labels) -> rows``.
        discriminator: ``(rows, labels) -> scores``.
        latent_size: numbers in each code z.
        num_classes: classes it is conditioned on (0: unconditional).
        ema: decay of the generator's moving average, e.g. 0.999 (None: sample from the generator).

    Example:
        >>> gan = build_gan("mlp", [64], latent_size=8, generator_sizes=[32], discriminator_sizes=[32])
        >>> gan.sample(4).shape
        torch.Size([4, 64])
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, latent_size: int, *, num_classes: int = 0,
                 ema: float | None = None):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.latent_size, self.num_classes, self.ema_decay = latent_size, num_classes, ema
        self.generator_ema = None
        if ema is not None:
            self.generator_ema = copy.deepcopy(generator)
            self.generator_ema.requires_grad_(False)

    @property
    def sampler(self) -> nn.Module:
        return self.generator_ema if self.generator_ema is not None else self.generator

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.sampler(z, labels)

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the averaged generator towards the trained one (after each generator update)."""
        if self.generator_ema is None:
            return
        for average, current in zip(self.generator_ema.parameters(), self.generator.parameters()):
            average.lerp_(current, 1.0 - self.ema_decay)
        for average, current in zip(self.generator_ema.buffers(), self.generator.buffers()):
            average.copy_(current)

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, *, generator: torch.Generator | None = None,
               batch_size: int = 1024) -> torch.Tensor:
        """``n`` generated rows. Conditional models take ``labels`` (default: classes in turn).
        ``generator`` seeds the codes (drawn on the CPU so that a seed gives the same samples
        on every device)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_size, generator=generator).to(device)
        if self.num_classes and labels is None:
            labels = torch.arange(n) % self.num_classes
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long).to(device)
        sampler = self.sampler
        was_training = sampler.training
        sampler.eval()
        parts = [sampler(z[i : i + batch_size], None if labels is None else labels[i : i + batch_size])
                 for i in range(0, n, batch_size)]
        sampler.train(was_training)
        return torch.cat(parts)


def build_gan(blocks: str, shape: list[int], *, latent_size: int, generator_sizes: list[int],
              discriminator_sizes: list[int], num_classes: int = 0, generator_activation: str = "relu",
              discriminator_activation: str = "leaky_relu", norm: str = "batch", dropout: float = 0.0,
              spectral_norm: bool = False, ema: float | None = None) -> GAN:
    """A GAN of dense (``blocks='mlp'``) or DCGAN-style convolutional (``'cnn'``) networks for rows
    of ``shape``."""
    if blocks == "mlp":
        generator = MLPGenerator(latent_size, generator_sizes, shape, num_classes=num_classes,
                                 activation=generator_activation, norm=norm)
        discriminator = mlp_discriminator(shape, discriminator_sizes, num_classes=num_classes,
                                          activation=discriminator_activation, dropout=dropout,
                                          spectral_norm=spectral_norm)
    else:
        generator = ConvGenerator(latent_size, generator_sizes, shape, num_classes=num_classes,
                                  activation=generator_activation, norm=norm)
        discriminator = conv_discriminator(shape, discriminator_sizes, num_classes=num_classes,
                                           activation=discriminator_activation, dropout=dropout,
                                           spectral_norm=spectral_norm)
    return GAN(generator, discriminator, latent_size, num_classes=num_classes, ema=ema)


def build(model_spec, inputs: dict, output_size: int) -> GAN:
    """Build a GAN from the model section of a spec; ``output_size`` is the number of classes
    a conditional GAN is conditioned on."""
    from ..errors import SpecError
    from .autoencoder import input_shape

    shape = input_shape(inputs)
    if model_spec.conditional and output_size < 2:
        raise SpecError("model.conditional: needs class labels (data.target) with at least two classes")
    if model_spec.blocks == "cnn":
        if len(shape) != 3:
            raise SpecError("model.blocks: a cnn gan generates images; use blocks: mlp for tables")
        factor = 2 ** len(model_spec.generator)
        if shape[1] % factor or shape[2] % factor:
            raise SpecError(
                f"model.generator: {len(model_spec.generator)} blocks double the size {len(model_spec.generator)} "
                f"times, so the image height and width ({shape[1]}x{shape[2]}) must be multiples of {factor}; "
                "use fewer blocks or set data.image_size"
            )
        if min(shape[1], shape[2]) < 2 ** len(model_spec.discriminator):
            raise SpecError(f"model.discriminator: {len(model_spec.discriminator)} blocks halve a {shape[1]}x"
                            f"{shape[2]} image below one pixel; use fewer blocks")
    return build_gan(model_spec.blocks, shape, latent_size=model_spec.latent_size,
                     generator_sizes=list(model_spec.generator), discriminator_sizes=list(model_spec.discriminator),
                     num_classes=output_size if model_spec.conditional else 0,
                     generator_activation=model_spec.generator_activation,
                     discriminator_activation=model_spec.discriminator_activation, norm=model_spec.norm,
                     dropout=model_spec.dropout, spectral_norm=model_spec.spectral_norm, ema=model_spec.ema)
