"""Every model family on every input kind it reads: shapes, masks, gradients, save/load."""

import pytest
import torch
from pydantic import TypeAdapter

import layerforge as lf
from layerforge.models import FAMILIES, Inputs, build_model
from layerforge.spec.load import load_spec
from layerforge.spec.schema import ModelSpec

INPUTS = {
    "table": ({"kind": "table", "features": 6}, lambda: (torch.randn(4, 6),)),
    "sequence": ({"kind": "sequence", "channels": 3, "length": 20}, lambda: (torch.randn(4, 3, 20),)),
    "image": ({"kind": "image", "channels": 1, "height": 8, "width": 8}, lambda: (torch.randn(4, 1, 8, 8),)),
    "tokens": ({"kind": "tokens", "vocab_size": 30, "length": 12}, lambda: (torch.randint(2, 30, (4, 12)),)),
}
MODELS = {
    "mlp": {"type": "mlp", "layers": [16]},
    "cnn": {"type": "cnn", "channels": [8, 16], "head": [16], "pool": "max"},
    "rnn": {"type": "rnn", "cell": "gru", "hidden_size": 8, "pooling": "attention"},
    "transformer": {"type": "transformer", "d_model": 16, "num_heads": 2, "num_layers": 1, "patch_size": 4},
}
# families that map inputs to predictions (autoencoders and GANs: tests/models/test_generative.py)
CASES = [(family, kind) for family, entry in FAMILIES.items() for kind in entry.reads if family in MODELS and kind in INPUTS]
# (text pairs: tests/contracts and tests/tasks/test_seq2seq.py)


def _build(model_spec: dict, kind: str, output: int = 5):
    spec = TypeAdapter(ModelSpec).validate_python(model_spec)
    torch.manual_seed(0)
    return build_model(spec, INPUTS[kind][0], output)


def _model(family, kind, output=5):
    return _build(MODELS[family], kind, output)


@pytest.mark.parametrize(("family", "kind"), CASES)
def test_forward_shape_gradients_and_state_round_trip(family, kind):
    model = _model(family, kind)
    inputs = INPUTS[kind][1]()
    output = model(*inputs)
    assert output.shape == (4, 5) and torch.isfinite(output).all()
    output.square().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    copy = _model(family, kind)
    copy.load_state_dict(model.state_dict())
    model.eval(), copy.eval()
    assert torch.equal(model(*inputs), copy(*inputs))


@pytest.mark.parametrize("family", ["cnn", "rnn", "transformer"])
def test_padding_does_not_change_the_output(family):
    """A series padded with junk after its length gives the same output as the series alone."""
    if family == "cnn":  # kernel 1: no position sees past the end, so padding cannot leak in
        model = _build({"type": "cnn", "channels": [8], "kernel_size": 1, "pool": "none", "head": []}, "sequence")
    else:
        model = _model(family, "sequence")
    model.eval()
    x = torch.randn(1, 3, 12)
    padded = torch.cat([x, torch.randn(1, 3, 8) * 100], dim=2)
    alone = model(x)
    masked = model(padded, torch.tensor([12]))
    torch.testing.assert_close(alone, masked, rtol=1e-4, atol=1e-5)


def test_causal_transformer_does_not_look_ahead():
    torch.manual_seed(0)
    model = build_model({"type": "transformer", "causal": True, "d_model": 16, "num_heads": 2, "num_layers": 2},
                        Inputs(kind="tokens", vocab_size=20, length=10), 20).eval()
    tokens = torch.randint(0, 20, (1, 10))
    changed = tokens.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % 20
    a, b = model(tokens), model(changed)
    assert a.shape == (1, 10, 20)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_family_and_data_kind_mismatch_is_a_spec_error():
    with pytest.raises(lf.SpecError, match="model.type: a cnn cannot read table data; use one of: mlp"):
        load_spec({"data": {"dataset": "iris"}, "model": {"type": "cnn"}})
    with pytest.raises(lf.SpecError, match="language modelling of a text corpus needs type: transformer with causal: true"):
        load_spec({"data": {"dataset": "python_docs"}, "model": {"type": "transformer"}})
    with pytest.raises(lf.SpecError, match="model.causal: a causal transformer is a language model"):
        load_spec({"data": {"dataset": "gunpoint"}, "model": {"type": "transformer", "causal": True}})
    with pytest.raises(lf.SpecError, match="model.kernel_size: give one kernel size per block"):
        load_spec({"data": {"dataset": "gunpoint"}, "model": {"type": "cnn", "channels": [4, 4], "kernel_size": [3]}})
    with pytest.raises(lf.SpecError, match=r"model.type: unknown model type 'cnnn' — did you mean 'cnn'\?"):
        load_spec({"data": {"dataset": "gunpoint"}, "model": {"type": "cnnn"}})


def test_summary_lists_layers_and_counts_parameters(tmp_path):
    from layerforge.summary import summarize

    rows, total, trainable = summarize({"data": {"dataset": "iris"}, "model": {"layers": [8]}})
    assert total == trainable == (4 * 8 + 8) + (8 * 3 + 3)
    assert ("head", "Linear", "(2, 3)", 27) in rows


def test_a_flattening_cnn_reads_where_things_are_and_refuses_rows_of_varying_length():
    model = _build({"type": "cnn", "channels": [8, 16], "head": [], "readout": "flatten"}, "image")
    assert model.head[-1].in_features == 16 * 2 * 2  # 8x8 pooled twice
    x = torch.randn(4, 1, 8, 8)
    assert model(x).shape == (4, 5)
    pooled = _build({"type": "cnn", "channels": [8, 16], "head": []}, "image")
    assert pooled.head[-1].in_features == 16
    spec = TypeAdapter(ModelSpec).validate_python({"type": "cnn", "channels": [8], "readout": "flatten"})
    with pytest.raises(lf.SpecError, match="model.readout: flatten needs rows of one size"):
        build_model(spec, {"kind": "sequence", "channels": 3, "length": 20, "variable_length": True}, 5)
