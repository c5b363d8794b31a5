"""Data augmentation as batch-wise tensor operations on the training device.

Works on sequences (B, C, L) and images (B, C, H, W); every operation draws its randomness from
torch's generator, which checkpoints save, so resumed runs augment exactly as uninterrupted ones.
"""

from __future__ import annotations

import math

import torch


class Augment:
    """Random transformations applied to each training batch (never to evaluation data).

    Args:
        flip: mirror images left-right (sequences: reverse time) with probability 0.5.
        shift: move by up to this many steps / pixels along each spatial axis (zero fill).
        rotate: rotate images by up to this many degrees.
        noise: add Gaussian noise with this standard deviation (inputs are standardised).
        scale: multiply each example by a factor in [1 - scale, 1 + scale].
        cutout: zero one square (images) or span (sequences) of this size per example.
        zoom: enlarge or shrink images by a factor in [1 - zoom, 1 + zoom] about a point drawn
            so that an enlarged picture shows a part of the original (a random crop, scaled back
            to the picture's size) and a shrunk one sits in its middle on zeros.
        time_mask, freq_mask: SpecAugment (Park et al. 2019) for spectrograms: zero a band of up
            to this many frames (the last axis) and of up to this many frequency bands (an
            image's rows; a sequence's channels), of a random width at a random place, per
            example. A clip's log-mel values are normalised per band, so zero is their mean.
    """

    def __init__(self, flip: bool = False, shift: int = 0, rotate: float = 0.0, noise: float = 0.0,
                 scale: float = 0.0, cutout: int = 0, time_mask: int = 0, freq_mask: int = 0, zoom: float = 0.0):
        self.flip, self.shift, self.rotate, self.zoom = flip, shift, rotate, zoom
        self.noise, self.scale, self.cutout = noise, scale, cutout
        self.time_mask, self.freq_mask = time_mask, freq_mask

    @classmethod
    def from_spec(cls, augment_spec, moves_targets: str | None = None) -> Augment | None:
        """The augmentation a spec's ``data.augment`` section asks for (None: none);
        ``moves_targets``: the targets are 'masks' or 'boxes' that move with the pictures
        (``pair``)."""
        if augment_spec is None:
            return None
        found = cls(**augment_spec.model_dump())
        found.moves_targets = moves_targets
        return found

    # what pair() moves with the pictures: 'masks', 'boxes' (None: the targets stay as they are)
    moves_targets: str | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip:
            flipped = torch.rand(len(x), device=x.device) < 0.5
            x = torch.where(flipped.view(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)
        if self.shift:
            x = self._shift(x)
        if self.rotate and x.ndim == 4:
            x = self._rotate(x)
        if self.zoom and x.ndim == 4:
            x = self._zoomed(x, *self._zoom(x))
        return self._retouched(x)

    def pair(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pictures and their targets moved alike (``moves_targets``: masks or boxes)."""
        return self._boxes(x, y) if self.moves_targets == "boxes" else self._masks(x, y)

    SEEN = 0.25  # the least share of a box's area left in the picture after a shift, for it to stay a box

    def _boxes(self, x: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pictures (B, C, H, W) and their boxes (B, most, 5: corners in pixels and the class,
        -1 past a picture's boxes), moved alike: the same flip, shift and zoom (a box cut by the
        edge keeps its part in sight; one with less than ``SEEN`` of its area left is dropped).
        Rotation is not offered for boxes; the changes of value touch the pictures only."""
        boxes = boxes.clone()
        height, width = x.shape[-2:]
        if self.flip:
            flipped = torch.rand(len(x), device=x.device) < 0.5
            x = torch.where(flipped.view(-1, 1, 1, 1), x.flip(-1), x)
            turned = torch.stack([width - boxes[..., 2], width - boxes[..., 0]], -1)
            boxes[..., [0, 2]] = torch.where(flipped[:, None, None], turned, boxes[..., [0, 2]])
        if self.shift:
            offsets = torch.randint(0, 2 * self.shift + 1, (2,)).tolist()
            x = self._shift(x, offsets)
            moved = boxes[..., :4] + torch.tensor([self.shift - offsets[1], self.shift - offsets[0]] * 2,
                                                  dtype=boxes.dtype, device=boxes.device)
            boxes = self._kept(boxes, moved, height, width)
        if self.zoom:
            factors, centres = self._zoom(x)
            x = self._zoomed(x, factors, centres)
            sides = torch.tensor([width, height] * 2, dtype=boxes.dtype, device=boxes.device)
            at = (2 * boxes[..., :4] / sides - 1 - centres.repeat(1, 2)[:, None]) * factors[:, None, None]
            boxes = self._kept(boxes, (at + 1) * sides / 2, height, width)
        return self._retouched(x), boxes

    def _kept(self, boxes: torch.Tensor, moved: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``boxes`` with their corners ``moved`` and cut to the picture; those left with less
        than ``SEEN`` of their area are dropped (class -1)."""
        limits = torch.tensor([width, height] * 2, dtype=boxes.dtype, device=boxes.device)
        kept = torch.minimum(moved.clamp(min=0), limits)
        area = lambda b: (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)  # noqa: E731
        lost = area(kept) < self.SEEN * area(moved)
        boxes = boxes.clone()
        boxes[..., :4] = kept
        boxes[..., 4] = torch.where(lost, torch.full_like(boxes[..., 4], -1), boxes[..., 4])
        return boxes

    def _zoom(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per picture, a factor in [1 - zoom, 1 + zoom] and the centre (x, y, from -1 to 1) of
        the part shown: anywhere the part stays in the picture when enlarged, the middle when
        shrunk."""
        factors = 1 + (torch.rand(len(x), device=x.device) * 2 - 1) * self.zoom
        room = (1 - 1 / factors).clamp(min=0)
        centres = (torch.rand(len(x), 2, device=x.device) * 2 - 1) * room[:, None]
        return factors, centres

    @staticmethod
    def _zoomed(x: torch.Tensor, factors: torch.Tensor, centres: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        zeros = torch.zeros_like(factors)
        theta = torch.stack([torch.stack([1 / factors, zeros, centres[:, 0]], 1),
                             torch.stack([zeros, 1 / factors, centres[:, 1]], 1)], 1)  # (B, 2, 3)
        grid = torch.nn.functional.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, mode=mode, align_corners=False, padding_mode="zeros")

    def _masks(self, x: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pictures (B, C, H, W) and their masks of classes (B, H, W), moved alike: the same flip,
        shift, rotation and zoom of each (a mask's pixels keep whole classes: the nearest is taken;
        what moves in from outside is background, class 0). The changes of value (scale, noise,
        cutout) touch the pictures only."""
        m = masks[:, None].to(x.dtype)
        if self.flip:
            flipped = (torch.rand(len(x), device=x.device) < 0.5).view(-1, 1, 1, 1)
            x, m = torch.where(flipped, x.flip(-1), x), torch.where(flipped, m.flip(-1), m)
        if self.shift:
            offsets = torch.randint(0, 2 * self.shift + 1, (2,)).tolist()
            x, m = self._shift(x, offsets), self._shift(m, offsets)
        if self.rotate:
            angles = (torch.rand(len(x), device=x.device) * 2 - 1) * math.radians(self.rotate)
            x, m = self._rotate(x, angles), self._rotate(m, angles, "nearest")
        if self.zoom:
            factors, centres = self._zoom(x)
            x, m = self._zoomed(x, factors, centres), self._zoomed(m, factors, centres, "nearest")
        return self._retouched(x), m[:, 0].round().to(masks.dtype)

    def _retouched(self, x: torch.Tensor) -> torch.Tensor:
        """The changes of value: scale, noise, cutout and SpecAugment's masks."""
        if self.scale:
            factor = 1 + (torch.rand(len(x), device=x.device) * 2 - 1) * self.scale
            x = x * factor.view(-1, *[1] * (x.ndim - 1))
        if self.noise:
            x = x + torch.randn_like(x) * self.noise
        if self.cutout:
            x = self._cutout(x)
        if self.time_mask:
            x = self._band(x, x.ndim - 1, self.time_mask)
        if self.freq_mask:
            x = self._band(x, x.ndim - 2, self.freq_mask)
        return x

    @staticmethod
    def _band(x: torch.Tensor, axis: int, most: int) -> torch.Tensor:
        """Zero, per example, a band of 0 to ``most`` positions along ``axis`` at a random place."""
        size = x.shape[axis]
        widths = torch.randint(0, min(most, size) + 1, (len(x),), device=x.device)
        starts = (torch.rand(len(x), device=x.device) * (size - widths + 1)).long()
        position = torch.arange(size, device=x.device)[None, :]
        inside = (position >= starts[:, None]) & (position < (starts + widths)[:, None])  # (B, size)
        shape = [len(x)] + [1] * (x.ndim - 1)
        shape[axis] = size
        return x * (~inside).view(shape).to(x.dtype)

    def _shift(self, x: torch.Tensor, offsets: list[int] | None = None) -> torch.Tensor:
        spatial = x.shape[2:]
        pad = [self.shift] * (2 * len(spatial))
        padded = torch.nn.functional.pad(x, pad)  # zero fill
        if offsets is None:
            offsets = torch.randint(0, 2 * self.shift + 1, (len(spatial),)).tolist()  # one offset per batch
        index = [slice(None), slice(None)] + [slice(o, o + n) for o, n in zip(offsets, spatial)]
        return padded[tuple(index)]

    def _rotate(self, x: torch.Tensor, angles: torch.Tensor | None = None, mode: str = "bilinear") -> torch.Tensor:
        if angles is None:
            angles = (torch.rand(len(x), device=x.device) * 2 - 1) * math.radians(self.rotate)
        cos, sin = angles.cos(), angles.sin()
        zeros = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)  # (B, 2, 3)
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        return torch.nn.functional.grid_sample(x, grid, mode=mode, align_corners=False, padding_mode="zeros")

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.ones_like(x[:, :1])  # (B, 1, *S)
        spatial = x.shape[2:]
        starts = [torch.randint(0, max(1, n - self.cutout + 1), (len(x),), device=x.device) for n in spatial]
        positions = [torch.arange(n, device=x.device) for n in spatial]
        inside = None
        for axis, (start, position) in enumerate(zip(starts, positions)):
            shape = [len(x)] + [1] * len(spatial)
            shape[axis + 1] = spatial[axis]
            hit = ((position[None, :] >= start[:, None]) & (position[None, :] < start[:, None] + self.cutout))
            hit = hit.view(shape)
            inside = hit if inside is None else inside & hit
        keep = keep * (~inside).unsqueeze(1).to(x.dtype)
        return x * keep

    def __repr__(self) -> str:
        return (f"Augment(flip={self.flip}, shift={self.shift}, rotate={self.rotate}, noise={self.noise}, "
                f"scale={self.scale}, cutout={self.cutout}, time_mask={self.time_mask}, freq_mask={self.freq_mask}, "
                f"zoom={self.zoom})")
