"""Training: the loop, the Trainer, losses, optimizers, schedules, callbacks, checkpoints."""
