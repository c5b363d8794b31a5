"""Training: the loop, the Trainer, losses, optimizers, schedules, callbacks, checkpoints.

(Named ``training`` rather than ``train`` so that ``layerforge.train`` stays the function.)
"""
