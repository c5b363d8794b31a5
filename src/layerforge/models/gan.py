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

from ..errors import SpecError
from ..nn import activations
from .configs import GANConfig
from .inputs import Inputs
from .mlp import DenseBlock
from .protocol import Graph, Network


def _maybe_spectral(layer: nn.Module, enabled: bool) -> nn.Module:
    return _spectral_norm(layer) if enabled else layer


class _Conditioning(nn.Module):
    """A learned vector per class (or nothing when ``num_classes`` is 0)."""

    def __init__(self, num_classes: int, size: int):
        super().__init__()
        self.embedding = nn.Embedding(num_classes, size) if num_classes else None

    def forward(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        if self.embedding is None or labels is None:
            return None
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
        if condition is None and self.condition.embedding is not None:
            raise ValueError("this generator is conditional: give the class of every row")
        h = z if condition is None else torch.cat([z, condition], dim=1)  # (B, K) or (B, 2K)
        return self.out(self.blocks(h)).view(z.shape[0], *self.output_shape)


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
        if condition is None and self.condition.embedding is not None:
            raise ValueError("this generator is conditional: give the class of every row")
        h = z if condition is None else torch.cat([z, condition], dim=1)
        return self.blocks(self.project(h).view(z.shape[0], *self.start))  # (B, C0, h0, w0) -> (B, C, H, W)


class _Critic(nn.Module):
    """Features -> one score per row, plus the class projection when conditional and the rows'
    classes are given."""

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


class GAN(Network):
    """A generator, a discriminator and, with ``ema``, a moving average of the generator's weights
    that is used for sampling (it gives smoother samples than the last training step).

    ``model(x)`` scores rows as real (the discriminator, without the class term of a conditional
    model); ``model.sample(n, labels)`` generates rows.

    Args:
        inputs: what one row holds (a table row or an image).
        num_classes: the classes of the data; a ``conditional`` GAN is conditioned on them.
        blocks, latent_size, ..., ema: see ``GANConfig`` (the spec's ``model`` keys).
            ``generator`` and ``discriminator`` are layer sizes (mlp) or channels (cnn).

    Example:
        >>> gan = GAN(Inputs.table(64), 0, **GANConfig(latent_size=8, generator=[32], discriminator=[32]).arguments())
        >>> gan.sample(4).shape
        torch.Size([4, 64])
    """

    def __init__(self, inputs: Inputs, num_classes: int, *, blocks: str, latent_size: int, conditional: bool,
                 generator: list[int], discriminator: list[int], generator_activation: str,
                 discriminator_activation: str, norm: str, dropout: float, spectral_norm: bool, ema: float | None):
        super().__init__(inputs)
        shape = inputs.shape
        _check_shapes(blocks, shape, generator, discriminator, conditional, num_classes)
        classes = num_classes if conditional else 0
        if blocks == "mlp":
            self.generator = MLPGenerator(latent_size, generator, shape, num_classes=classes,
                                          activation=generator_activation, norm=norm)
            self.discriminator = mlp_discriminator(shape, discriminator, num_classes=classes,
                                                   activation=discriminator_activation, dropout=dropout,
                                                   spectral_norm=spectral_norm)
        else:
            self.generator = ConvGenerator(latent_size, generator, shape, num_classes=classes,
                                           activation=generator_activation, norm=norm)
            self.discriminator = conv_discriminator(shape, discriminator, num_classes=classes,
                                                    activation=discriminator_activation, dropout=dropout,
                                                    spectral_norm=spectral_norm)
        self.latent_size, self.num_classes, self.ema_decay = latent_size, classes, ema
        self.generator_ema = None
        if ema is not None:
            self.generator_ema = copy.deepcopy(self.generator)
            self.generator_ema.requires_grad_(False)

    @property
    def sampler(self) -> nn.Module:
        return self.generator_ema if self.generator_ema is not None else self.generator

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.discriminator(x)  # (B,) realness scores

    def trace(self, inputs: tuple, labels: torch.Tensor | None = None) -> None:
        """The generators from codes, then the discriminator on ``inputs``."""
        labels = labels if self.num_classes else None
        z = torch.randn(len(inputs[0]), self.latent_size, generator=torch.Generator().manual_seed(0))
        z = z.to(inputs[0].device)
        for generator in (self.generator, self.generator_ema):
            if generator is not None:
                generator(z, labels)
        self.discriminator(inputs[0], labels)

    def export_graphs(self) -> list[Graph]:
        """The generator that samples (the averaged one with ``ema``): codes (and classes, when
        conditional) to rows."""
        device = next(self.parameters()).device
        codes = torch.randn(2, self.latent_size, generator=torch.Generator().manual_seed(0)).to(device)
        example, names = (codes,), ["codes"]
        if self.num_classes:
            example, names = (codes, torch.arange(2, device=device) % self.num_classes), ["codes", "labels"]
        return [Graph("generator", self.sampler, example, names, ["rows"], {n: {0: "batch"} for n in names},
                      reads="codes", classes=self.num_classes)]

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


def _check_shapes(blocks: str, shape: list[int], generator: list[int], discriminator: list[int], conditional: bool,
                  num_classes: int) -> None:
    if conditional and num_classes < 2:
        raise SpecError("model.conditional: needs class labels (data.target) with at least two classes")
    if blocks != "cnn":
        return
    if len(shape) != 3:
        raise SpecError("model.blocks: a cnn gan generates images; use blocks: mlp for tables")
    factor = 2 ** len(generator)
    if shape[1] % factor or shape[2] % factor:
        raise SpecError(
            f"model.generator: {len(generator)} blocks double the size {len(generator)} times, so the image height "
            f"and width ({shape[1]}x{shape[2]}) must be multiples of {factor}; use fewer blocks or set "
            "data.image_size"
        )
    if min(shape[1], shape[2]) < 2 ** len(discriminator):
        raise SpecError(f"model.discriminator: {len(discriminator)} blocks halve a {shape[1]}x{shape[2]} image below "
                        "one pixel; use fewer blocks")


def build(config: GANConfig, inputs: Inputs, output_size: int = 0, num_classes: int = 0) -> GAN:
    return GAN(inputs, num_classes, **config.arguments())


class Judge(nn.Module):
    """Judges generated rows with a classifier trained on the real rows: its features for the
    Fréchet distance, its predictions for the class checks.

    Args:
        classifier: a predictive network trained on the real rows, or None for unlabelled data:
            then the features are the standardised rows themselves.
    """

    def __init__(self, classifier: Network | None = None):
        super().__init__()
        self.classifier = classifier

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(features (N, F), logits (N, C) or None)."""
        if self.classifier is None:
            return x.flatten(1).float(), None
        self.classifier.eval()
        features = self.classifier.features(x)
        return features.float(), self.classifier.output_layer(features).float()
