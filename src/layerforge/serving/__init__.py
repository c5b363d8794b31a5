"""The HTTP prediction service: ``layerforge serve RUN [RUN...]`` or ``layerforge.serve(...)``.

Safe with no configuration: it binds to 127.0.0.1, serves only the runs named when it starts (no
route loads, uploads or changes a model), limits request bodies (1 MiB) before parsing them, and
answers failures with an id instead of a stack trace. Each model's request schema comes from its
model.json, so /docs and /openapi.json show its columns, types and categories. Concurrent
requests are batched into one forward pass on a worker thread; a full queue answers 503.

Example:
    >>> import layerforge as lf                                   # doctest: +SKIP
    >>> lf.serve(["runs/digits-mlp-20261128-101500"], port=8000)  # blocks; Ctrl-C stops it
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError
from .options import ServeOptions
from .served import Served

__all__ = ["ServeOptions", "create_app", "load_models", "serve"]

_ENVIRONMENT = "LAYERFORGE_SERVE"


def load_models(runs: Sequence[str | Path], backend: str = "torch", int8: bool = False) -> list:
    """The ``Served`` model of each run; a run is a directory or ``NAME=DIRECTORY``.

    A run's name is its spec's ``name`` unless given; names must differ.

    Raises:
        DataError: no runs, a name given twice, or a run the backend cannot serve.
        CheckpointError: a run that cannot be loaded.
    """
    if not runs:
        raise DataError("name at least one run directory to serve")
    models, seen = [], {}
    for entry in runs:
        text = str(entry)
        name, _, folder = text.partition("=") if "=" in text and not Path(text).exists() else ("", "", text)
        if not name:
            from ..run.directory import load_run

            name = load_run(folder).spec.name
        if name in seen:
            raise DataError(f"two runs are named {name!r} ({seen[name]} and {folder}); name them: "
                            f"NAME={folder}")
        seen[name] = folder
        models.append(Served(name, folder, backend, int8))
    return models


def create_app(runs: Sequence[str | Path] | list, options: ServeOptions | None = None, **settings):
    """The service's FastAPI app for ``runs`` (directories, ``NAME=DIRECTORY``, or ``Served``
    models), with ``options`` or the same settings as keywords (see ``ServeOptions``)."""
    _require("fastapi")
    from .app import create_app as make

    options = options or ServeOptions(**settings)
    problems = options.problems()
    if problems:
        raise DataError("; ".join(problems))
    models = list(runs) if runs and all(isinstance(r, Served) for r in runs) else load_models(
        runs, options.backend, options.int8)
    return make(models, options)


def serve(runs: Sequence[str | Path], *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          api_key_env: str | None = None, log_level: str = "info", **settings) -> None:
    """Serve ``runs`` over HTTP until stopped (SIGTERM or Ctrl-C finish the requests in flight).

    Args:
        runs: run directories, or ``NAME=DIRECTORY``.
        host: the address to bind (127.0.0.1 unless told otherwise).
        port: the TCP port.
        workers: processes; each loads every model.
        api_key_env: the environment variable that holds the API key (none: no key asked).
        settings: ``ServeOptions`` fields (backend, int8, max_batch, batch_wait_ms, max_body,
            queue_size).
    """
    import logging

    _require("uvicorn")
    import uvicorn

    api_key = _api_key(api_key_env)
    options = ServeOptions(api_key=api_key, **settings)
    problems = options.problems()
    if problems:
        raise DataError("; ".join(problems))
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO), format="%(message)s")
    shared = {"log_level": log_level, "access_log": False, "timeout_graceful_shutdown": 30,
              "host": host, "port": port}
    if workers > 1:
        os.environ[_ENVIRONMENT] = json.dumps({"runs": [str(r) for r in runs], "api_key_env": api_key_env,
                                               "options": {**options.to_json(), "api_key": None}})
        load_models(runs, options.backend, options.int8)  # fail here, once, on a run that cannot be served
        uvicorn.run("layerforge.serving:_app_from_environment", factory=True, workers=workers, **shared)
    else:
        uvicorn.run(create_app(runs, options), **shared)


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise DataError(f"serving needs FastAPI and uvicorn ({module} is not installed): "
                        "pip install 'layerforge[serve]'")


def _api_key(name: str | None) -> str | None:
    if name is None:
        return None
    key = os.environ.get(name, "")
    if not key:
        raise DataError(f"--api-key-env {name}: the environment variable {name} is not set or empty; set it to the "
                        "key clients must send")
    return key


def _app_from_environment():
    """The app of one worker process (``--workers N``), from the settings the parent left."""
    settings = json.loads(os.environ[_ENVIRONMENT])
    options = ServeOptions(**{**settings["options"], "api_key": _api_key(settings["api_key_env"])})
    return create_app(settings["runs"], options)
