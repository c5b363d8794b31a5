"""The arithmetic of training steps (``train.precision``): fp32, or autocast to bf16 (CPUs and
GPUs: bf16 keeps fp32's range, so no loss scaling) or fp16 (GPUs, with a loss scaler that skips a
step whose scaled gradients overflowed). Weights, optimizer state and evaluation stay fp32."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import SpecError


@dataclass
class Precision:
    """Autocast to ``dtype`` on ``device_type``, and fp16's loss scaler."""

    device_type: str
    dtype: torch.dtype
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def of(cls, name: str, device: torch.device) -> Precision | None:
        """The precision ``train.precision`` names on ``device``, or None for fp32.

        Raises:
            SpecError: fp16 without a CUDA device.
        """
        if name == "fp32":
            return None
        if name == "fp16":
            if device.type != "cuda":
                raise SpecError("train.precision: fp16 needs a CUDA GPU (its loss scaling); on CPUs use bf16")
            return cls("cuda", torch.float16, torch.amp.GradScaler("cuda"))
        return cls(device.type, torch.bfloat16)

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype)


__all__ = ["Precision"]
