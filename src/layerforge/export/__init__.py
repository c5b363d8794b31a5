"""Export a trained run: one self-contained ONNX file per graph its network offers, parity
proven on the run's own rows, optional int8 versions that are kept only when they are smaller,
no slower and as accurate, and everything the torch-free runtime (``layerforge.runtime``) needs
to go from raw rows to decoded predictions.

``RUN/export/``::

    model.onnx            rows -> outputs (encoder.onnx, decoder.onnx: an autoencoder's halves;
                          generator.onnx: a GAN's sampler)
    model.int8.onnx       when --quantize int8 kept it
    runtime.json          preprocessing, decoding and the graphs' inputs, for layerforge.runtime;
                          the SHA-256 of every graph, of the run's model.json and weights it was
                          made from, and of its own content (an edited, replaced or stale file is
                          refused, see ``current``)
    parity.json           what was proven: differences, decoded agreement, metrics, sizes, latency
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import files
from ..capabilities import ExportParity
from ..errors import CheckpointError, ExportError, OutputError
from ..progress import SHOW_AFTER, Meter
from ..runtime import FORMAT, load

RUNTIME = "runtime.json"
PARITY = ExportParity.record
EXPORT_DIR = ExportParity.folder


def export_run(run, *, quantize: str | None = None, opset: int | None = None,
               out: str | Path | None = None, max_drop: float = 1.0, keep_int8: bool = False, log=None,
               progress=None) -> Path:
    """Export a trained run (a ``layerforge.Run``) to ONNX (see the module's docstring) and
    return the folder. ``run.export(...)`` and ``layerforge export`` call it; the command also
    rebuilds report.html with an Export section.

    Args:
        quantize: 'int8' to add int8 versions of the graphs that predict rows.
        opset: the ONNX opset (default: each exporter's own, 17 or 18).
        out: the folder to write (default: ``RUN/export``): absent, empty, or an earlier export
            of the same run holding only what an export writes, which is replaced only once the
            new one is complete and proven. Anything else is refused and left as it is.
        max_drop: the largest loss of the headline metric an int8 model may cost, in points
            (hundredths) for metrics between 0 and 1 (accuracy, r2), in percent otherwise.
        keep_int8: keep an int8 model that is as accurate and smaller even when it is slower.
        log: called with one line per step; default: silent.
        progress: where to show the graphs exported and the time left once the export takes more
            than a few seconds (a Rich console or a text stream); None shows nothing.

    Raises:
        ExportError: a graph no exporter writes faithfully, or decoded predictions that differ.
        CheckpointError: the run cannot be loaded.
        OutputError: ``out`` holds something that is not an earlier export of this run.
    """
    if quantize not in (None, "int8"):
        raise ExportError(f"--quantize: '{quantize}' is not a quantization layerforge makes (choices: int8)")
    refused = run.manifest.runtime_problem()
    if refused:
        raise ExportError(f"{run.path}: {refused}")
    members = run.members if run.manifest.ensemble else [run]
    graphs = sum(len(member.predictor.model.export_graphs()) for member in members)
    with Meter("graph", graphs, progress, after=SHOW_AFTER) as meter:
        return _export(run, quantize, opset, out, max_drop, keep_int8, log, meter)


def _export(run, quantize, opset, out, max_drop, keep_int8, log, meter: Meter) -> Path:
    """``export_run``'s work, each graph exported advancing ``meter``."""
    say = log or (lambda line: None)
    target = Path(out) if out is not None else run.path / EXPORT_DIR
    _check_target(run, target, "--out" if out is not None else "the export folder")
    building = target.parent / f".{target.name}.building-{int(time.time() * 1000)}"
    files.make_dir(building)
    try:
        if run.manifest.ensemble:
            record = _write_ensemble(run, building, quantize, opset, max_drop, say, keep_int8, meter)
        else:
            record = _write_single(run, building, quantize, opset, max_drop, say, keep_int8, meter)
        record["pipeline"] = _proven_on_raw_rows(run, building, say)
        files.write_json(building / PARITY, files.sealed(record))
        _replace(building, target)
    except BaseException:
        files.remove(building)
        raise
    return target


def _write_ensemble(run, building: Path, quantize, opset, max_drop, say, keep_int8: bool, meter: Meter) -> dict:
    """Each member exported into ``members/`` (its own codec, graphs and decoding), and a
    runtime.json that combines them as the ensemble's task does."""
    from ..run.store import answer_state

    names = list(run.manifest.ensemble.members)
    members = {}
    for name, member in zip(names, run.members):
        say(f"member {name}:")
        if not (building / name).parent.is_dir():
            files.make_dir((building / name).parent)
        _export(member, quantize, opset, building / name, max_drop, keep_int8, lambda line: say(f"  {line}"), meter)
        members[name] = files.read_json(building / name / PARITY)
    manifest = run.manifest
    files.write_json(building / RUNTIME, files.sealed({
        "format": FORMAT, "task": manifest.task, "target": manifest.target, "features": manifest.features,
        "decoding": run.task.decoding().to_json(), "ensemble": {"members": names}, "graphs": {},
        "made_from": answer_state(run.path), "decision": None}))
    proven = {name: {k: v for k, v in found.items() if k != files.SEAL} for name, found in members.items()}
    return {"format": FORMAT, "run": str(run.path), "members": proven}


def _write_single(run, building: Path, quantize, opset, max_drop, say, keep_int8: bool, meter: Meter) -> dict:
    """Each graph the run's network offers, proven and timed, int8 versions when asked, and the
    runtime.json the runtime reads; returns parity.json's record."""
    from .onnx import OnnxModule, export_graph
    from .parts import (
        decoded_agreement,
        held_out_rows,
        labelled_rows,
        latency,
        metrics_of,
        runtime_record,
        seeded_codes,
    )

    predictor = run.predictor
    model, task = predictor.model.cpu().eval(), predictor.task
    rows, rows_from = held_out_rows(run)
    graphs, record = {}, {"format": FORMAT, "run": str(run.path), "rows": rows_from, "graphs": {}}
    for graph in model.export_graphs():
        started = time.perf_counter()
        if graph.reads_rows and rows is None:
            raise ExportError("the run keeps no rows to prove its export on, and its source data is gone")
        inputs = (graph.from_rows(rows) if graph.from_rows else rows) if graph.reads_rows else seeded_codes(graph, 256)
        exported = export_graph(graph, tuple(model.exporters), building / f"{graph.name}.onnx", inputs, opset)
        graphs[graph.name] = (graph, exported)
        entry = {"file": exported.path.name, "exporter": exported.exporter, "inputs": graph.input_names,
                 "outputs": graph.output_names, "dynamic": {k: {str(a): v for a, v in axes.items()}
                                                            for k, axes in graph.dynamic.items()},
                 "reads": graph.reads, **{k: v for k, v in exported.parity.items() if k != "passed"},
                 "failed_exporters": exported.tried, "bytes": exported.path.stat().st_size,
                 "seconds": round(time.perf_counter() - started, 2)}
        record["graphs"][graph.name] = entry
        say(f"{graph.name}.onnx: {exported.exporter} exporter, outputs within "
            f"{exported.parity['max_rel_diff']:.1e} of PyTorch's on {len(exported.parity['shapes'])} batches")
        meter.advance({"done": f"{graph.name}.onnx"})
    if "model" in graphs and rows is not None:
        graph, exported = graphs["model"]
        agreement = decoded_agreement(task, model, exported.path, graph, rows)
        record["graphs"]["model"]["decoded"] = agreement
        if not agreement["identical"]:
            raise ExportError(f"model.onnx decodes {agreement['differing']} of {agreement['rows']} rows "
                              f"differently from the network ({agreement['what']}); it was not kept")
        say(f"decoded predictions identical on {agreement['rows']} rows")
    labelled = labelled_rows(run) if "model" in graphs else None
    if labelled is not None:
        graph, exported = graphs["model"]
        part, _, y = labelled
        record["metrics"] = {"part": part, "rows": int(len(y)), "pytorch": metrics_of(run, model, labelled),
                             "onnx": metrics_of(run, OnnxModule(exported.path, graph.input_names), labelled)}
    if quantize:
        from .quantize import quantize_graphs

        int8 = record["int8"] = quantize_graphs(run, graphs, rows, labelled, record.get("metrics"), building,
                                                max_drop, say, keep_int8)
        if int8["kept"]:
            record["graphs"]["model"]["int8_file"] = "model.int8.onnx"
    if "model" in graphs and rows is not None:  # timed once: beside int8 when it was made
        graph, exported = graphs["model"]
        timings = record.get("int8", {}).get("latency")
        record["latency"] = timings or {"float": latency(exported.path, graph, rows)}
    files.write_json(building / RUNTIME, files.sealed(runtime_record(run, graphs, record, building)))
    return record


def _proven_on_raw_rows(run, building: Path, say) -> dict:
    """The whole road on the run's own raw rows: its Predictor (codec, PyTorch, decoding,
    decision) against the exported runtime (the same codec and decoding, ONNX Runtime).

    Raises:
        ExportError: the exported runtime answers a row otherwise.
    """
    from .parts import pipeline_parity

    found = pipeline_parity(run, building)
    if found.get("identical") is False:
        raise ExportError(f"the exported runtime answers {found['differing']} of {found['rows']} of the run's own rows "
                          f"differently from the run ({found['what']}); it was not kept")
    if "rows" in found:
        say(f"raw rows to answers: identical on {found['rows']} of the run's own rows, through the codec, "
            "ONNX Runtime and the decoding")
    if "lists" in found:
        say(f"recommendations: the same top-20 lists for {found['lists']['users']} users, through the runtime")
    return found


def _written_by_export(folder: Path) -> tuple[str | None, set[Path]] | None:
    """The run an export in ``folder`` was made from (as parity.json names it) and the files an
    export writes there (of an ensemble, its members' too); None when ``folder`` holds no
    readable export."""
    try:
        record = files.read_json(folder / RUNTIME)
        proof = files.read_json(folder / PARITY)
    except CheckpointError:
        return None
    if not isinstance(record, dict) or not isinstance(proof, dict) or not isinstance(record.get("graphs"), dict):
        return None
    written = {folder / RUNTIME, folder / PARITY}
    for entry in record["graphs"].values():
        names = [entry.get("file"), entry.get("int8")] if isinstance(entry, dict) else []
        written |= {folder / name for name in names if isinstance(name, str)}
    for name in (record.get("ensemble") or {}).get("members") or []:
        member = _written_by_export(folder / str(name))
        if member is None:
            return None
        written |= member[1]
    run = proof.get("run")
    return (run if isinstance(run, str) else None), written


def _check_target(run, target: Path, option: str) -> None:
    """Refuse an export folder that holds anything but an earlier export of ``run``: what an
    export replaces, it must have written."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise OutputError(f"{option} {target} is a file, not a folder; name a new folder for the export "
                          "(nothing was written)")
    if target.is_dir() and any(target.iterdir()):
        found = _written_by_export(target)
        own = target.resolve() == (run.path / EXPORT_DIR).resolve()  # the run's own export folder, moved or not
        made_here = found is not None and found[0] is not None and Path(found[0]).resolve() == run.path.resolve()
        if found is None or not (own or made_here):
            raise OutputError(f"{option} {target} is not empty and is not an earlier export of {run.path}; "
                              "it was left as it is. Name a new or empty folder")
        others = sorted(p for p in target.rglob("*") if not p.is_dir() and p not in found[1])
        if others:
            raise OutputError(f"{option} {target} holds {others[0].relative_to(target)}, which no export wrote; "
                              "it was left as it is. Move it, or name a new folder")
    if not target.parent.is_dir():
        try:
            target.parent.mkdir(parents=True)
        except OSError as error:
            raise OutputError(f"{option} {target}: cannot create {target.parent} ({error.strerror})") from None
    reason = files.writable_directory(target.parent)
    if reason is not None:
        raise OutputError(f"{option} {target}: cannot write in {target.parent} ({reason}); choose another place")


def _replace(building: Path, target: Path) -> None:
    """Put the finished export in place; an earlier export is removed only afterwards."""
    if target.exists():
        old = target.parent / f".{target.name}.old-{int(time.time() * 1000)}"
        files.rename(target, old)
        files.rename(building, target)
        files.remove(old)
    else:
        files.rename(building, target)


def current(run_dir: str | Path, folder: str | Path | None = None, *, int8: bool = False, threads: int | None = None):
    """The runtime of a run's export (``RUN/export`` unless ``folder``), refused when the run
    changed after it was made: its model.json or weights are not those runtime.json records
    (a run continued or replaced, or given fairness thresholds in place by a layerforge before
    mitigation made new versions).

    Raises:
        CheckpointError: no export, an export that was edited or damaged, or one older than the run.
    """
    from ..run.store import answer_state

    run_dir = Path(run_dir)
    folder = Path(folder) if folder is not None else run_dir / EXPORT_DIR
    if not (folder / RUNTIME).is_file():
        raise CheckpointError(f"{run_dir} has no export for --backend onnx: write one with "
                              f"`layerforge export {run_dir}`")
    runtime = load(folder, int8=int8, threads=threads)
    now = answer_state(run_dir)
    for name, digest in runtime.record["made_from"].items():
        if now.get(name) != digest:
            raise CheckpointError(f"{folder / RUNTIME}: this export was made from an earlier state of {run_dir} "
                                  f"({name} has changed since), so it would not answer as the run does; export it "
                                  f"again with `layerforge export {run_dir}`")
    return runtime


__all__ = ["export_run", "current", "FORMAT"]
