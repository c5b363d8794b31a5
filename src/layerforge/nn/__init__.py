"""Building blocks: activations, initialisers and layers. Never reads specs."""
