"""Data: built-in datasets, data kinds (load, fit an encoder, encode), split plans, preparation,
in-memory batches and augmentation."""
