import pytest


@pytest.fixture(scope="session")
def pretrained_sources(tmp_path_factory):
    """Tiny transformers backbones saved here, one per input kind the pretrained family reads
    (the contract's token inputs have 30 ids and 12 positions; its images 1 x 8 x 8)."""
    import torch
    from transformers import BertConfig, BertModel, ViTConfig, ViTModel

    folder = tmp_path_factory.mktemp("backbones")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=16)).save_pretrained(folder / "tokens")
    ViTModel(ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32)).save_pretrained(folder / "image")
    return folder


@pytest.fixture(autouse=True)
def _pretrained_example(request, monkeypatch):
    """The pretrained family's example names a backbone saved for the case's input kind."""
    params = getattr(request.node, "callspec", None)
    if params is None or params.params.get("family") != "pretrained":
        return
    from layerforge.models.configs import PretrainedConfig

    source = request.getfixturevalue("pretrained_sources") / params.params["kind"]
    monkeypatch.setattr(PretrainedConfig, "example", {"source": str(source), "layers": [8]})
