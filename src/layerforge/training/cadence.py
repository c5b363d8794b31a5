"""How often a run of many epochs looks at itself: its validations (``train.validate_every:
auto``) and the doctor's measured epochs.

Both have a cost per epoch that does not shrink with the epoch: scoring the validation rows, or
taking a doctor's sample, costs about as much as a training step of a small network (0.2 to 0.4
ms on a CPU, most of it code and data the step does not use, brought back each time). A run of a
few hundred epochs of a few steps would spend a fifth of its time on them, for curves that show
no more with a point per epoch than with one every few. So a run of up to ``EVERY_EPOCH_UP_TO``
epochs is looked at after every epoch, and a longer one about ``LOOKS`` times in all.
"""

from __future__ import annotations

EVERY_EPOCH_UP_TO = 100  # a run of up to this many epochs: after every epoch
LOOKS = 50  # a longer run: every k-th epoch (and the last), about this many times


def interval(epochs: int) -> int:
    """k: a run of ``epochs`` epochs is looked at after every k-th epoch (and after its last)."""
    return 1 if epochs <= EVERY_EPOCH_UP_TO else -(-epochs // LOOKS)
