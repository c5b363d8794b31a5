"""Autoencoders: an encoder to ``latent_size`` numbers and a decoder back to the input.

Variants: ``plain``; ``denoising`` (trained to undo a corruption of its input); ``variational``
(the encoder gives a mean and a log-variance per latent number, codes are sampled with the
reparameterisation trick, and a KL term pulls them towards a standard normal).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import DataError, SpecError
from ..nn import activations
from ..nn.init import init_linear
from .configs import AutoencoderConfig, NoiseConfig
from .inputs import Inputs
from .mlp import DenseBlock
from .protocol import Call, Graph, Network


def corrupt(x: torch.Tensor, kind: str, amount: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` with gaussian noise of standard deviation ``amount`` added, or a fraction ``amount``
    of its values set to 0 (the training mean, since inputs are standardised)."""
    if generator is None:
        draw = torch.randn_like(x) if kind == "gaussian" else torch.rand_like(x)
    else:  # reproducible noise (evaluation): drawn on the generator's device, then moved
        draw_fn = torch.randn if kind == "gaussian" else torch.rand
        draw = draw_fn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    if kind == "gaussian":
        return x + amount * draw
    return x * (draw >= amount)


def _conv(dims: int):
    return nn.Conv1d if dims == 1 else nn.Conv2d


def _norm(kind: str, dims: int, channels: int) -> nn.Module:
    if kind == "batch":
        return (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class ConvEncoder(nn.Module):
    """Strided convolutions, each halving the length (or height and width), then flatten.

    Args:
        in_channels: channels of the input.
        size: its length ``[L]`` or ``[H, W]``.
        channels: output channels of each block.
    """

    def __init__(self, in_channels: int, size: list[int], channels: list[int], kernel_size: int, activation: str,
                 norm: str):
        super().__init__()
        dims = len(size)
        blocks, self.sizes = [], [list(size)]
        for c_in, c_out in zip([in_channels, *channels], channels):
            blocks += [_conv(dims)(c_in, c_out, kernel_size, stride=2, padding=kernel_size // 2),
                       _norm(norm, dims, c_out), activations.get(activation)]
            self.sizes.append([math.ceil(s / 2) for s in self.sizes[-1]])
        self.blocks = nn.Sequential(*blocks)
        self.out_features = channels[-1] * math.prod(self.sizes[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).flatten(1)  # (B, C, *S) -> (B, C_last * prod(S_last))


class ConvDecoder(nn.Module):
    """The mirror of a ``ConvEncoder``: unflatten, then upsample to each encoder size and convolve."""

    def __init__(self, encoder: ConvEncoder, in_channels: int, channels: list[int], kernel_size: int,
                 activation: str, norm: str):
        super().__init__()
        dims = len(encoder.sizes[0])
        self.shape = [channels[-1], *encoder.sizes[-1]]
        layers: list[nn.Module] = []
        outs = [*reversed(channels[:-1]), in_channels]
        for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs)):
            size = encoder.sizes[len(channels) - 1 - i]
            layers += [nn.Upsample(size=tuple(size), mode="nearest"),
                       _conv(dims)(c_in, c_out, kernel_size, padding=kernel_size // 2)]
            if i < len(channels) - 1:
                layers += [_norm(norm, dims, c_out), activations.get(activation)]
        self.blocks = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.blocks(h.view(h.shape[0], *self.shape))  # (B, F) -> (B, C_last, *S_last) -> (B, C, *S)


def _dense_coders(shape: list[int], layers: list[int], activation: str, norm: str, dropout: float,
                  init: str) -> tuple[nn.Module, nn.Module]:
    """An encoder of dense blocks (rows flattened) and a decoder that mirrors it."""
    features = math.prod(shape)
    sizes = [features, *layers]
    encoder_blocks = [DenseBlock(a, b, activation, norm, dropout) for a, b in zip(sizes, sizes[1:])]
    encoder = nn.Sequential(nn.Flatten(), *encoder_blocks)
    back = list(reversed(sizes))
    decoder_blocks = [DenseBlock(a, b, activation, norm, dropout) for a, b in zip(back[:-2], back[1:-1])]
    decoder = nn.Sequential(*decoder_blocks, nn.Linear(back[-2], features))
    for block in [*encoder_blocks, *decoder_blocks]:
        init_linear(block.linear, init, activation)
    return encoder, decoder


class Autoencoder(Network):
    """An encoder to ``latent_size`` codes and a decoder back to the input's shape.

    ``forward(x)`` reconstructs from the codes' mean (no noise, no sampling), as prediction
    wants; ``reconstruct(x)`` is the training path with corruption and sampling.

    Args:
        inputs: what one row holds (a table row, a sequence of one length, or an image).
        variant, blocks, ..., threshold_quantile: see ``AutoencoderConfig`` (the spec's
            ``model`` keys). ``layers`` build dense blocks, ``channels`` strided convolutions.

    Example:
        >>> model = Autoencoder(Inputs.table(64), **AutoencoderConfig(layers=[32], latent_size=2).arguments())
        >>> model.encode(torch.zeros(3, 64))[0].shape
        torch.Size([3, 2])
    """

    def __init__(self, inputs: Inputs, *, variant: str, blocks: str, layers: list[int], channels: list[int],
                 kernel_size: int, latent_size: int, activation: str, norm: str, dropout: float, init: str,
                 noise: NoiseConfig, beta: float, threshold_quantile: float, anomaly_score: str):
        super().__init__(inputs)
        if inputs.variable_length:
            raise DataError(f"an autoencoder reconstructs sequences of one length; these have unequal lengths "
                            f"(up to {inputs.length} steps)")
        shape = inputs.shape
        if blocks == "mlp":
            self.encoder, self.decoder = _dense_coders(shape, layers, activation, norm, dropout, init)
            encoder_features = decoder_features = layers[-1]
        else:
            if len(shape) == 1:
                raise SpecError("model.blocks: cnn blocks read sequences or images, not a table; use blocks: mlp")
            self.encoder = ConvEncoder(shape[0], shape[1:], channels, kernel_size, activation, norm)
            self.decoder = ConvDecoder(self.encoder, shape[0], channels, kernel_size, activation, norm)
            encoder_features = decoder_features = self.encoder.out_features
        self.variational = variant == "variational"
        self.denoising = variant == "denoising"
        self.to_latent = nn.Linear(encoder_features, latent_size * (2 if self.variational else 1))
        self.from_latent = nn.Sequential(nn.Linear(latent_size, decoder_features), activations.get(activation))
        self.latent_size, self.input_shape = latent_size, list(shape)
        self.noise_kind, self.noise_amount, self.beta = noise.kind, noise.amount, beta
        self.threshold_quantile, self.anomaly_score = threshold_quantile, anomaly_score

    def feature_keys(self) -> list[str]:
        """The encoder and its last layer to the code: a classifier can start from them
        (self-supervised pretraining, ``model.init_from`` an autoencoder run)."""
        return [key for key in self.state_dict() if key.startswith(("encoder.", "to_latent."))]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The codes' mean (B, latent) and, for a variational model, their log-variance."""
        h = self.to_latent(self.encoder(x))
        if self.variational:
            mean, log_var = h.chunk(2, dim=1)  # (B, 2K) -> 2 x (B, K)
            return mean, log_var.clamp(-20.0, 10.0)
        return h, None

    def code_scores(self, x: torch.Tensor) -> torch.Tensor:
        """How unlikely each row's code is (B,): the KL divergence of its code distribution from
        the standard-normal prior, in nats (variational models)."""
        mean, log_var = self.encode(x)
        return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.from_latent(z)).view(z.shape[0], *self.input_shape)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(x)[0])

    def export_graphs(self) -> list[Graph]:
        """The reconstruction (anomaly scores), the encoder (codes: embed) and the decoder
        (codes to rows: sampling, for a variational model)."""
        model = super().export_graphs()[0]
        encoder = Graph("encoder", Call(self, "encode"), model.example, ["x"], ["codes"], {"x": {0: "batch"}})
        codes = torch.randn(2, self.latent_size, generator=torch.Generator().manual_seed(0))
        codes = codes.to(next(self.parameters()).device)
        decoder = Graph("decoder", Call(self, "decode"), (codes,), ["codes"], ["rows"], {"codes": {0: "batch"}},
                        reads="codes")
        return [model, encoder, decoder]

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` rows decoded from standard-normal codes (meaningful for a variational model);
        ``generator`` seeds the codes, drawn on the CPU so a seed gives the same rows anywhere."""
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        rows = self.decode(torch.randn(n, self.latent_size, generator=generator).to(device))
        self.train(was_training)
        return rows

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training path: corrupt (denoising), encode, sample (variational), decode.

        Returns:
            The reconstruction and, for a variational model, the KL divergence of each row's
            code distribution from a standard normal (B,); otherwise None.
        """
        if self.denoising:
            x = corrupt(x, self.noise_kind, self.noise_amount)
        mean, log_var = self.encode(x)
        if log_var is None:
            return self.decode(mean), None
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)  # (B,)
        return self.decode(z), kl


def build(config: AutoencoderConfig, inputs: Inputs, output_size: int = 0, num_classes: int = 0) -> Autoencoder:
    """An autoencoder for ``inputs`` (``output_size`` is not used: the output has the input's shape)."""
    return Autoencoder(inputs, **config.arguments())
