"""A search worker process: ``python -m layerforge.search.worker SPEC ...``, started by
``tune(..., jobs=N)`` for each worker beyond the first. It joins the study and runs its share of
trials through the library, as the first process does; the command line is not involved."""

from __future__ import annotations

import argparse
import sys

from ..errors import LayerforgeError
from . import tune


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m layerforge.search.worker", description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--runs-dir", required=True)
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=None)
    args = parser.parse_args(argv)
    try:
        tune(args.spec, trials=args.trials, timeout=args.timeout, storage=args.storage, study=args.study,
             runs_dir=args.runs_dir, worker=args.worker)
    except LayerforgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
