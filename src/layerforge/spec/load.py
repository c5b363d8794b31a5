"""Loading specs: safe YAML, ``--set`` overrides, whole-spec validation and readable errors."""

from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .. import recipes, tasks
from ..data.builtin import DATASETS
from ..data.kinds import kind_of
from ..errors import SpecError, did_you_mean
from ..models import FAMILIES
from ..models.configs import FamilyConfig
from ..training import losses as _losses
from .schema import Spec


def load_spec(source: Any, overrides: list[str] | tuple[str, ...] = (), *, check_files: bool = True) -> Spec:
    """Load and validate a spec.

    Args:
        source: a path to a YAML file, a dict with the same structure, or a ``Spec``.
        overrides: ``"key.path=value"`` strings; values are read as YAML scalars or lists
            (``train.epochs=30``, ``model.layers=[256,128]``).
        check_files: require ``data.path`` to exist (off when reading a finished run's spec,
            which predicts without its training data).

    Returns:
        The validated ``Spec`` with every default filled in.

    Raises:
        SpecError: every problem in the spec at once, each with its key path and a hint.

    Example:
        >>> spec = load_spec({"data": {"dataset": "iris"}}, ["train.epochs=5"])
        >>> spec.train.epochs
        5
    """
    base_dir, label = None, None
    if isinstance(source, Spec):
        raw = source.model_dump(mode="json", exclude_unset=True)
    elif isinstance(source, dict):
        try:
            raw = copy.deepcopy(source)
        except RecursionError:
            raise SpecError("nested too deeply to be a spec") from None
    elif isinstance(source, (str, Path)):
        path = Path(source)
        label, base_dir = str(path), path.resolve().parent
        raw = read_yaml(path)
    else:
        raise TypeError(f"a spec is a path, a dict or a Spec, not {type(source).__name__}")
    for override in overrides:
        apply_override(raw, override)
    return validate(raw, base_dir=base_dir, label=label, check_files=check_files)


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping with the safe loader; errors name the file and line."""
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise SpecError(f"not UTF-8 text (byte {error.start}): save the spec as UTF-8", source=str(path)) from None
    except RecursionError:
        raise SpecError("nested too deeply to be a spec", source=str(path)) from None
    except OSError as error:
        raise SpecError(f"cannot be read: {error.strerror}", source=str(path)) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError(f"not valid YAML{where}: {problem}", source=str(path)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(f"expected a mapping of sections at the top, got {type(raw).__name__}", str(path))
    return raw


_SHORTHAND_SECTIONS = ("optimizer", "loss", "schedule", "discriminator_optimizer")


def apply_override(raw: dict, override: str) -> None:
    """Apply one ``key.path=value`` override to the raw spec dict in place."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {override!r}: expected KEY=VALUE, e.g. train.epochs=30")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    set_key(raw, key.strip(), value, f"--set {override!r}")


def set_key(raw: dict, key: str, value: Any, label: str) -> None:
    """Set ``key`` ('train.optimizer.lr') of a raw spec dict in place, making the sections on
    the way (``label`` names the setting in errors)."""
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if isinstance(child, str) and part in _SHORTHAND_SECTIONS:
            child = {"name": child}  # optimizer: adam  ->  optimizer: {name: adam}
        if child is None:
            child = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise SpecError(f"{label}: '{where}' holds a value, not a section")
        node[part] = child
        node = child
    node[parts[-1]] = value


def validate(raw: dict, *, base_dir: Path | None = None, label: str | None = None,
             check_files: bool = True) -> Spec:
    """Validate a raw spec dict, reporting every problem in one ``SpecError``."""
    try:
        spec = Spec.model_validate(raw, context={"base_dir": base_dir, "check_files": check_files})
    except ValidationError as error:
        raise SpecError(format_errors(error, raw), source=label) from None
    except RecursionError:
        raise SpecError("nested too deeply to be a spec", source=label) from None
    if spec.task is None:
        spec = spec.model_copy(update={"task": _implied_task(spec)})
    problems = cross_checks(spec) + search_problems(spec, raw, base_dir, check_files)
    if problems:
        raise SpecError(problems, source=label)
    return spec


def search_problems(spec: Spec, raw: dict, base_dir: Path | None = None, check_files: bool = True) -> list[str]:
    """Problems of the search section: its metric, and every value its space can give (each
    choice, each range's ends) applied to the spec and validated, before any trial runs."""
    search = spec.search
    if search is None:
        return []
    problems = []
    task = _known_task(spec)  # None: the data decides; the metric is checked when tuning
    if task is not None:
        metrics = tasks.get(task).metric_names()
        if search.metric is not None and search.metric not in metrics:
            problems.append(f"search.metric: unknown metric '{search.metric}' for {task}"
                            f"{did_you_mean(search.metric, metrics)} (choices: {', '.join(metrics)})")
    if spec.data.split.val <= 0:
        problems.append("search: trials are compared on the validation rows; set data.split.val above 0")
    base = {key: value for key, value in raw.items() if key != "search"}
    for key, distribution in search.space.items():
        if key.split(".")[0] in ("search", "name"):
            problems.append(f"search.space.{key}: the search cannot search {key.split('.')[0]}")
            continue
        for value in distribution.values_to_check():
            trial = copy.deepcopy(base)
            try:
                set_key(trial, key, value, f"search.space.{key}")
                validate(trial, base_dir=base_dir, check_files=check_files)
            except SpecError as error:
                problems.append(f"search.space.{key}: {value!r} does not fit the spec: {error.problems[0]}")
                break
    kinds = {distribution.kind for distribution in search.space.values()}
    if search.sampler == "grid" and kinds - {"choice", "int_uniform"}:
        problems.append("search.sampler: grid needs every key of the space to be a choice or an int_uniform range")
    if search.sampler in ("grid", "cmaes") and search.architecture is not None:
        problems.append(f"search.sampler: {search.sampler} cannot search an architecture; use tpe or random")
    if search.sampler == "cmaes" and "choice" in kinds:
        problems.append("search.sampler: cmaes samples numbers only; use tpe for a space with choices")
    if search.architecture is not None and not spec.model.architecture_space():
        searchable = ", ".join(name for name, family in FAMILIES.items()
                               if family.config.model_construct().architecture_space())
        problems.append(f"search.architecture: a {spec.model.type} has no architecture space to search (families "
                        f"with one: {searchable})")
    return problems


def _known_task(spec: Spec) -> str | None:
    """The task, when validation can know it: named or implied, or a built-in dataset's."""
    return spec.task or (DATASETS[spec.data.dataset].task if spec.data.dataset in DATASETS else None)


def _implied_task(spec: Spec) -> str | None:
    """The task the model family implies (an autoencoder reconstructs), or the only task the
    data kind supports (a corpus is language modelling); None: the data's target decides."""
    if spec.model.implied_task() is not None:
        return spec.model.implied_task()
    kind = kind_of(spec.data) if spec.data.named else None
    return kind.tasks[0] if kind is not None and len(kind.tasks) == 1 else None


def cross_checks(spec: Spec) -> list[str]:
    """Problems that involve more than one section. Each object answers for itself: the task,
    the model family and the data kind."""
    problems = []
    train, task = spec.train, spec.task
    task_class = tasks.get(task) if task is not None else None
    if train.loss is not None and task_class is not None:
        problems += [f"train.loss: {p}" for p in _losses.check(train.loss.name, {}, task_class)]
    has_val = spec.data.split.val > 0
    valid = tasks.monitor_names(task, has_val)
    watched = [("train.early_stopping.monitor", train.early_stopping and train.early_stopping.monitor)]
    if train.schedule.name == "plateau":
        watched.append(("train.schedule.monitor", train.schedule.monitor or "val_loss"))
    for path, monitor in watched:
        if monitor and monitor not in valid:
            hint = "" if has_val or not monitor.startswith("val_") else (
                " (data.split.val is 0, so there are no validation metrics)"
            )
            problems.append(
                f"{path}: unknown value '{monitor}'{did_you_mean(monitor, valid)}{hint} "
                f"(choices: {', '.join(valid)})"
            )
    if getattr(spec.model, "norm", None) == "batch" and train.batch_size == 1:
        problems.append(
            "model.norm: batch norm needs batches of at least 2 rows, but train.batch_size is 1; "
            "use norm: layer or none, or a larger batch_size"
        )
    if train.clip_grad_norm is not None and train.clip_grad_value is not None:
        problems.append("train.clip_grad_value: give clip_grad_norm or clip_grad_value, not both")
    if train.calibrate != "none":
        known = _known_task(spec)
        if known is not None and not tasks.get(known).calibrates:
            problems.append(f"train.calibrate: temperature scaling is for classification; this run does {known}")
        if spec.data.split.val <= 0:
            problems.append("train.calibrate: calibration is fitted on the validation rows; set data.split.val above 0")
    recipe = recipes.get(task_class.recipe) if task_class is not None else None
    able = recipe.abilities if recipe is not None else None
    if train.adversarial is not None and able is not None and not able.adversarial:
        problems.append(f"train.adversarial: applies to one network trained with one loss; a {task} trains "
                        f"{recipe.trains}")
    for key in ("precision", "compile"):
        if getattr(train, key) not in ("fp32", False) and able is not None and not able.precision:
            problems.append(f"train.{key}: applies to one network trained with one loss; a {task} trains "
                            f"{recipe.trains}")
    if train.fairness is not None and able is not None and not able.fairness:
        problems.append(f"train.fairness: reweighs the rows of one classifier; a {task} trains {recipe.trains}")
    if train.discriminative_lr is not None and able is not None and not able.discriminative_lr:
        problems.append(f"train.discriminative_lr: applies to one network trained with one optimizer; a {task} "
                        f"trains {recipe.trains}")
    if train.unfreeze_at is not None and not spec.model.freeze:
        problems.append("train.unfreeze_at: nothing is frozen; set model.freeze (e.g. [features]) or remove it")
    if spec.model.freeze and train.unfreeze_at is not None and train.unfreeze_at > train.epochs:
        problems.append(f"train.unfreeze_at: epoch {train.unfreeze_at} comes after the last ({train.epochs})")
    implied = spec.model.implied_task()
    if implied is not None and task != implied:
        problems.append(f"task: a {spec.model.type} is trained for task '{implied}', not '{task}'; leave task out "
                        f"or set it to {implied}")
    needed = [name for name, family in FAMILIES.items() if family.config.task == task]
    if needed and spec.model.type not in needed:
        problems.append(f"model.type: task '{task}' needs model type {' or '.join(needed)}, not {spec.model.type}")
    problems += (task_class or tasks.Task).spec_problems(spec)
    if spec.data.named:
        kind = kind_of(spec.data)
        if kind.reads not in FAMILIES[spec.model.type].reads:
            suited = [name for name, family in FAMILIES.items() if kind.reads in family.reads]
            problems.append(f"model.type: a {spec.model.type} cannot read {kind.name} data; use one of: "
                            f"{', '.join(suited)}")
        elif task is not None and task not in kind.tasks:
            problems.append(f"task: {kind.name} data supports tasks {', '.join(kind.tasks)}, not '{task}'")
        problems += spec.model.problems(kind)
    return problems


# --- error formatting ----------------------------------------------------------------------

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _kind(value: Any) -> str:
    return "an integer" if isinstance(value, int) and not isinstance(value, bool) else "a number"


def _expected(error: dict) -> str | None:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    bounds = {"greater_than": ">", "greater_than_equal": "≥", "less_than": "<", "less_than_equal": "≤"}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        noun = "a number" if isinstance(limit, float) else _kind(value)  # a float's bound: any number
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"{noun} {bounds[kind]} {limit}"
    if kind == "finite_number":
        return "a finite number"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        return expected if " " not in expected else f"one of {expected}"
    if kind == "too_short":
        return f"at least {ctx.get('min_length')} items"
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} items"
    return None


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (several for a union of sections)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _tag(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    return field.default if field is not None and isinstance(field.default, str) else None


def _family(raw: Any) -> type[BaseModel]:
    """The configuration class of the family a raw spec's model section names."""
    model = raw.get("model") if isinstance(raw, dict) else None
    family = model.get("type", "mlp") if isinstance(model, dict) else "mlp"
    return FAMILIES[family].config if isinstance(family, str) and family in FAMILIES else FamilyConfig


def _keyed(annotation: Any) -> bool:
    """Whether an annotation is a mapping from keys a user chooses to sections."""
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is dict and _models_in(typing.get_args(arg)[-1]):
            return True
    return False


def _walk(loc: tuple, raw: Any = None) -> tuple[str, type[BaseModel] | None]:
    """Turn a pydantic error location into a spec path, dropping union-member tags.

    Returns the path and the model class the location ends in (for unknown-key hints).
    """
    path, models = "", [Spec]
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if isinstance(part, int):
            path += f"[{part}]"
            continue
        if not path and part == "model" and models == [Spec]:
            path, models = "model", [_family(raw)]
            continue
        tagged = [m for m in models if _tag(m) == part or m.__name__ == part]
        holder = next((m for m in models if part in m.model_fields), None)
        if tagged and holder is None:
            models = tagged  # e.g. 'cnn' in ('model', 'cnn', 'channels'): a union member's tag
        elif holder is not None:
            path += f".{part}" if path else part
            annotation = holder.model_fields[part].annotation
            models = _models_in(annotation)
            if _keyed(annotation) and parts:  # the next part is a key the user chose, e.g. a searched key
                path += f".{parts.pop(0)}"
        elif not models or (part[:1].islower() and ("[" in part or part in _TAGS)):
            continue  # a scalar union member's tag such as 'int' or "literal['full']"
        else:
            path += f".{part}" if path else part
            models = []
    return path, (models[0] if len(models) == 1 else None)


_TAGS = {"int", "float", "str", "bool", "list", "dict", "tuple", "none"}


def format_errors(error: ValidationError, raw: Any = None) -> list[str]:
    """One readable line per problem: path, what was expected, what was given (``raw``: the spec
    as given, to name the keys of its model family)."""
    grouped: dict[str, dict] = {}
    for item in error.errors():
        loc = item["loc"]
        if item["type"] == "extra_forbidden":
            path, model = _walk(loc[:-1], raw)
            key = loc[-1]
            valid = sorted(model.model_fields) if model else []
            hint = did_you_mean(key, valid)
            where = f"{path}: " if path else ""
            grouped.setdefault(f"{path}.{key}", {"lines": []})["lines"].append(
                f"{where}unknown key '{key}'{hint} (valid keys: {', '.join(valid)})"
            )
            continue
        path, _ = _walk(loc, raw)
        key = (item.get("ctx") or {}).get("key")
        if item["type"] == "layerforge" and key:
            path = f"{path}.{key}" if path else key
        entry = grouped.setdefault(path, {"expected": [], "lines": [], "input": item.get("input")})
        expected = _expected(item)
        if item["type"] == "missing":
            entry["lines"].append(f"{path}: required key is missing")
        elif expected is not None:
            if expected not in entry["expected"]:
                entry["expected"].append(expected)
        else:
            message = item["msg"].removeprefix("Value error, ")
            entry["lines"].append(f"{path}: {message}" if path else message)
    lines = []
    for path, entry in grouped.items():
        if entry.get("expected"):
            expected = " or ".join(entry["expected"])
            lines.append(f"{path}: expected {expected}, got {_show(entry['input'])}")
        lines.extend(entry["lines"])
    return lines


__all__ = ["load_spec", "apply_override", "validate", "format_errors"]


def dotted(values: dict, prefix: str = "") -> dict[str, Any]:
    """A nested mapping (a resolved spec) as dotted keys; numbers, text, booleans and None stay
    as they are, lists become their text (what MLflow params and TensorBoard's hparams take).

    >>> dotted({"train": {"optimizer": {"lr": 0.001}, "log": ["mlflow"]}, "seed": None})
    {'train.optimizer.lr': 0.001, 'train.log': "['mlflow']", 'seed': None}
    """
    found: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            found.update(dotted(value, f"{name}."))
        else:
            found[name] = value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
    return found


def changed(spec) -> dict[str, Any]:
    """The keys of a resolved spec (a pydantic model) whose values differ from their defaults, as
    dotted keys: what its author set, as near as the resolved spec can tell (a key set to its
    default value does not show)."""
    from pydantic import BaseModel

    found: dict[str, Any] = {}

    def walk(model, prefix: str) -> None:
        for name, field in type(model).model_fields.items():
            value, key = getattr(model, name), f"{prefix}{name}"
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            if isinstance(value, BaseModel) and isinstance(default, BaseModel) and type(value) is type(default):
                walk(value, f"{key}.")
            elif isinstance(value, BaseModel):  # a section without a default (data) or set where the default is none
                before = len(found)
                walk(value, f"{key}.")
                if len(found) == before and not field.is_required():
                    found[key] = {}
            elif value != default:
                found[key] = value
    walk(spec, "")
    return found
