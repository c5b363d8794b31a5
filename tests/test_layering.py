"""The code's layering: capabilities ask objects and never compare a task's name; there are no
import cycles, even through imports deferred into functions; and an import is deferred into a
function only for start-up: to keep ``layerforge --help`` and spec validation small, or a heavy
library (torch, pandas, matplotlib, ...) out of modules that do not always need it."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import layerforge

SOURCE = Path(layerforge.__file__).resolve().parent
HEAVY = {"torch", "pandas", "matplotlib", "sklearn", "scipy", "safetensors", "tokenizers", "PIL", "sktime",
         "statsmodels", "mnist1d", "tensorboard", "pyarrow", "rich", "typer", "yaml", "playwright", "fastapi",
         "uvicorn", "starlette", "onnx", "onnxruntime", "optuna", "sqlalchemy"}
TASK_NAME = r'"(classification|regression|forecasting|language_model|reconstruction|generation)"'


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in SOURCE.rglob("*.py")}


def _imports(module: str) -> list[tuple[str, bool]]:
    """(imported module, deferred into a function) for each import; TYPE_CHECKING blocks skipped."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for n in ast.walk(node)}
    deferred = {id(n) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in deferred) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in MODULES else base, id(node) in deferred))
    return found


def _closure(module: str, found: set | None = None) -> set[str]:
    """The layerforge modules importing ``module`` runs (its top-level imports and packages)."""
    found = set() if found is None else found
    parts = module.split(".")
    for step in [".".join(parts[:i]) for i in range(1, len(parts) + 1)]:
        if step in MODULES and step not in found:
            found.add(step)
            for target, deferred in _imports(step):
                if not deferred and target in MODULES:
                    _closure(target, found)
    return found


def _heavy(module: str, seen=None) -> bool:
    """Whether importing ``module`` imports a heavy library (through its top-level imports)."""
    seen = set() if seen is None else seen
    if module in seen:
        return False
    seen.add(module)
    for target, deferred in _imports(module):
        if deferred:
            continue
        if target.split(".")[0] in HEAVY or (target in MODULES and _heavy(target, seen)):
            return True
    return False


def test_no_comparison_of_a_task_name_outside_tasks():
    pattern = re.compile(rf"(==|!=) *{TASK_NAME}|{TASK_NAME} *(==|!=)|in \([^)]*{TASK_NAME}")
    found = [f"{path.relative_to(SOURCE)}:{number}: {line.strip()}"
             for path in SOURCE.rglob("*.py") if "tasks" not in path.relative_to(SOURCE).parts
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_no_probing_of_tasks_with_hasattr_or_getattr():
    pattern = re.compile(r"(hasattr|getattr)\((self\.)?(task|task_|\w+\.task)\b")
    found = [f"{path.relative_to(SOURCE)}:{number}: {line.strip()}" for path in SOURCE.rglob("*.py")
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_no_import_cycles_even_through_deferred_imports():
    graph = {module: {t for t, _ in _imports(module) if t in MODULES and t != module} for module in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return path + [module, target]
            if target not in state:
                cycle = visit(target, path + [module])
                if cycle:
                    return cycle
        state[module] = 2
        return None

    for module in sorted(MODULES):
        if module not in state:
            assert visit(module, []) is None


def test_imports_are_deferred_only_for_start_up():
    """A deferred import keeps its target out of ``layerforge --help`` or spec validation, or
    keeps a heavy library out of a module that does not always need it; any other import is at
    the top of its module."""
    help_path, validation = _closure("layerforge.cli"), _closure("layerforge.spec.load")
    unjustified = []
    for module in sorted(MODULES):
        for target, deferred in _imports(module):
            if not deferred or target not in MODULES or _heavy(target):
                continue
            if (module in help_path and target not in help_path) or (module in validation and target not in validation):
                continue
            unjustified.append(f"{module} defers {target}")
    assert unjustified == []


def test_help_and_spec_validation_stay_free_of_torch_and_pandas():
    code = ("import sys\nimport layerforge.cli\nfrom layerforge.spec.load import load_spec\n"
            "load_spec({'data': {'dataset': 'digits_images'}, 'model': {'type': 'cnn'}, 'train': {'loss': 'hinge'}})\n"
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'sklearn') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


# the names of the other registries, and the package that owns each kind of name: data kinds and
# built-in datasets' kinds (data/), the input kinds models read (models/), what a task serves
# (tasks/), recipes (recipes/), decodings (decodings.py)
REGISTRY_NAMES = ("table", "sequence", "image", "text", "corpus", "forecast", "tokens", "classes", "values",
                  "anomaly_scores", "next_token", "samples", "rows", "supervised", "gan", "lr_range", "outputs")
OWNERS = ("data", "models", "tasks", "recipes", "decodings.py")


def test_no_comparison_of_a_kind_decoding_serves_or_recipe_name_outside_its_package():
    names = "|".join(REGISTRY_NAMES)
    subject = r"(?:kind|reads|recipe|serves|decoding)\w*(?:\.\w+|\[[^\]]+\])*"
    pattern = re.compile(rf"{subject}\s*(?:==|!=)\s*['\"]({names})['\"]|['\"]({names})['\"]\s*(?:==|!=)\s*{subject}"
                         rf"|{subject}\s+(?:not\s+)?in\s+[(\[{{]\s*['\"]({names})['\"]")
    found = [f"{path.relative_to(SOURCE)}:{number}: {line.strip()}"
             for path in SOURCE.rglob("*.py") if path.relative_to(SOURCE).parts[0] not in OWNERS
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_no_capability_record_is_read_by_its_name_outside_capabilities():
    """A capability's JSON is read through its typed result (``capabilities.RECORDED``), never by
    the file's name and its keys: no string in code (docstrings aside) names one of the records."""
    from layerforge.capabilities import RECORDED

    names = {result.record for result in RECORDED}
    found = []
    for module, path in MODULES.items():
        if module.startswith("layerforge.capabilities"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        documents = {id(node.body[0].value) for node in ast.walk(tree)
                     if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and node.body and isinstance(node.body[0], ast.Expr)
                     and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in documents
                    and any(re.search(rf"(^|/){re.escape(name)}$", node.value) for name in names)):
                found.append(f"{module}:{node.lineno}: {node.value!r}")
    assert found == []
