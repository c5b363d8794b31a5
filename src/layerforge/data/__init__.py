"""Data: built-in datasets, tables, preprocessing, splits and in-memory batches."""
