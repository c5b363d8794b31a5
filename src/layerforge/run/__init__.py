"""Run directories: what a training run writes, and everything that reads it again.

``store`` (paths, the split record, listing runs), ``manifest`` (model.json: typed and
versioned), ``predictor`` (raw rows to decoded outputs: the one path every command, the Python
API and later the service and exports share) and ``directory`` (``Run``, a loaded run).
"""
