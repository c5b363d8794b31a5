"""Autoencoders and GANs: every variant on every input kind it reads: shapes, gradients, save/load."""

import pytest
import torch
from pydantic import TypeAdapter

from layerforge.models import FAMILIES, build_model
from layerforge.models.autoencoder import corrupt
from layerforge.recipes.gan import gradient_penalty
from layerforge.spec.schema import ModelSpec
from layerforge.training import losses

INPUTS = {
    "table": ({"kind": "table", "features": 6}, (4, 6)),
    "sequence": ({"kind": "sequence", "channels": 2, "length": 20}, (4, 2, 20)),
    "image": ({"kind": "image", "channels": 1, "height": 8, "width": 8}, (4, 1, 8, 8)),
}


def _build(model_spec: dict, kind: str, num_classes: int = 0):
    torch.manual_seed(0)
    return build_model(TypeAdapter(ModelSpec).validate_python(model_spec), INPUTS[kind][0], 0, num_classes)


AUTOENCODERS = [
    (variant, blocks, kind)
    for variant in ("plain", "denoising", "variational")
    for blocks in ("mlp", "cnn")
    for kind in FAMILIES["autoencoder"].reads
    if not (blocks == "cnn" and kind == "table")
]


@pytest.mark.parametrize(("variant", "blocks", "kind"), AUTOENCODERS)
def test_autoencoder_reconstructs_input_shape_and_trains_every_parameter(variant, blocks, kind):
    spec = {"type": "autoencoder", "variant": variant, "blocks": blocks, "layers": [8], "channels": [4, 8],
            "latent_size": 3}
    model = _build(spec, kind)
    x = torch.randn(*INPUTS[kind][1])
    assert model(x).shape == x.shape
    mean, log_var = model.encode(x)
    assert mean.shape == (4, 3) and (log_var is not None) == (variant == "variational")
    reconstruction, kl = model.reconstruct(x)
    assert reconstruction.shape == x.shape and (kl is not None) == (variant == "variational")
    loss = (reconstruction - x).pow(2).mean() + (kl.mean() if kl is not None else 0)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    copy = _build(spec, kind)
    copy.load_state_dict(model.state_dict())
    model.eval(), copy.eval()
    assert torch.equal(model(x), copy(x))


def test_only_the_denoising_variant_corrupts_its_training_input():
    x = torch.randn(64, 6)
    plain = _build({"type": "autoencoder", "layers": [8], "latent_size": 3}, "table")
    denoising = _build({"type": "autoencoder", "variant": "denoising", "layers": [8], "latent_size": 3}, "table")
    denoising.load_state_dict(plain.state_dict())
    plain.train(), denoising.train()
    assert torch.equal(plain.reconstruct(x)[0], plain(x))  # no dropout, no noise: the same path
    assert not torch.allclose(denoising.reconstruct(x)[0], denoising(x))


def test_corruption_kinds():
    x = torch.ones(1000, 10)
    generator = torch.Generator().manual_seed(0)
    masked = corrupt(x, "mask", 0.3, generator)
    assert set(masked.unique().tolist()) == {0.0, 1.0}
    assert abs(float((masked == 0).float().mean()) - 0.3) < 0.02
    noisy = corrupt(x, "gaussian", 0.5, torch.Generator().manual_seed(0))
    assert abs(float((noisy - x).std()) - 0.5) < 0.02
    assert torch.equal(noisy, corrupt(x, "gaussian", 0.5, torch.Generator().manual_seed(0)))


GANS = [
    (blocks, kind, conditional, spectral)
    for blocks, kinds in (("mlp", ("table", "image")), ("cnn", ("image",)))
    for kind in kinds
    for conditional in (False, True)
    for spectral in (False, True)
]


@pytest.mark.parametrize(("blocks", "kind", "conditional", "spectral"), GANS)
def test_gan_samples_rows_and_both_networks_learn(blocks, kind, conditional, spectral):
    spec = {"type": "gan", "blocks": blocks, "latent_size": 4, "conditional": conditional,
            "generator": [8, 8] if blocks == "cnn" else [8], "discriminator": [8, 8] if blocks == "cnn" else [8],
            "spectral_norm": spectral, "ema": 0.9}
    model = _build(spec, kind, num_classes=3)
    shape = INPUTS[kind][1]
    labels = torch.tensor([0, 1, 2, 0]) if conditional else None
    fake = model.generator(torch.randn(4, 4), labels)
    assert fake.shape == shape
    real = torch.randn(*shape)
    loss = losses.get("non_saturating", "generation")
    d_loss = loss.discriminator(model.discriminator(real, labels), model.discriminator(fake.detach(), labels))
    d_loss = d_loss + gradient_penalty(model.discriminator, real, fake.detach(), labels)
    d_loss.backward()
    for name, parameter in model.discriminator.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    loss.generator(model.discriminator(fake, labels)).backward()
    for name, parameter in model.generator.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert model.sample(6, generator=torch.Generator().manual_seed(0)).shape == (6, *shape[1:])
    copy = _build(spec, kind, num_classes=3)
    copy.load_state_dict(model.state_dict())
    model.eval(), copy.eval()
    a = model.sample(5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, copy.sample(5, generator=torch.Generator().manual_seed(1)))


def test_ema_generator_moves_towards_the_trained_one():
    model = _build({"type": "gan", "latent_size": 4, "generator": [8], "discriminator": [8], "ema": 0.5}, "table")
    with torch.no_grad():
        for parameter in model.generator.parameters():
            parameter.add_(1.0)
    before = [p.clone() for p in model.generator_ema.parameters()]
    model.update_ema()
    for old, new, target in zip(before, model.generator_ema.parameters(), model.generator.parameters()):
        torch.testing.assert_close(new, 0.5 * old + 0.5 * target)
    assert all(not p.requires_grad for p in model.generator_ema.parameters())


@pytest.mark.parametrize("name", ["non_saturating", "hinge", "wasserstein_gp"])
def test_adversarial_losses_match_their_formulas(name):
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    loss = losses.get(name, "generation")
    softplus = torch.nn.functional.softplus
    expected_d, expected_g = {
        "non_saturating": (softplus(-real).mean() + softplus(fake).mean(), softplus(-fake).mean()),
        "hinge": (torch.relu(1 - real).mean() + torch.relu(1 + fake).mean(), -fake.mean()),
        "wasserstein_gp": (fake.mean() - real.mean(), -fake.mean()),
    }[name]
    torch.testing.assert_close(loss.discriminator(real, fake), expected_d)
    torch.testing.assert_close(loss.generator(fake), expected_g)
    assert loss.gp_weight == (10.0 if name == "wasserstein_gp" else 0.0)


def test_label_smoothing_lowers_the_real_target():
    real, fake = torch.tensor([3.0]), torch.tensor([-3.0])
    smooth = losses.get("non_saturating", "generation", {"label_smoothing": 0.1})
    expected = torch.nn.functional.binary_cross_entropy_with_logits(real, torch.tensor([0.9])) + \
        torch.nn.functional.softplus(fake).mean()
    torch.testing.assert_close(smooth.discriminator(real, fake), expected)


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    class Slope(torch.nn.Module):
        def forward(self, x, labels=None):
            return x[:, 0]  # |grad| = 1 everywhere

    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    assert float(gradient_penalty(Slope(), real, fake, None)) == pytest.approx(0.0, abs=1e-6)
