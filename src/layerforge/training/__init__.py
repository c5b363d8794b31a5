"""Training parts: losses, optimizers and schedules, callbacks, checkpoints. The loops that use
them are in ``layerforge.recipes``.

(Named ``training`` rather than ``train`` so that ``layerforge.train`` stays the function.)
"""
