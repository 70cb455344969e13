"""The house rules, checked on the source: stages import only earlier stages, no import cycles (imports
inside functions included), no Streamlit in the backend, no private names imported across modules, no
module over 400 lines, and no test module importing another."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "neuronlab"
# Pipeline order: a module may import its own stage or an earlier one. The foundation (errors, files,
# paths, progress) is below every stage; the front (CLI, plots, presets, ship, bench, the public API) above all.
FOUNDATION = ("errors", "files", "paths", "progress", "threads")
STAGES = ("neurons", "models", "data", "analysis", "evaluation", "transfer", "training")
FRONT_PACKAGES = ("cli", "plots")  # front ends split into packages
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def backend_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names, line) for every import in ``path``, inside functions too, but not under TYPE_CHECKING
    (annotations only). Relative imports are resolved against ``path``'s package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and is_type_checking(block)
               for stmt in block.body for n in ast.walk(stmt)}
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found.append((base, [a.name for a in node.names], node.lineno))
    return found


def targets(module: str, names: list[str], known: dict[str, Path]) -> list[str]:
    """The backend modules an import statement loads (``from pkg import mod`` names the submodule)."""
    subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in known]
    return subs or ([module] if module in known else [])


def stage(module: str) -> int:
    """0 foundation, 1.. the stages in order, len(STAGES)+1 the front."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in STAGES:
        return 1 + STAGES.index(parts[1])
    if len(parts) > 1 and parts[1] in FOUNDATION:
        return 0
    return len(STAGES) + 1


def graph() -> dict[str, set[str]]:
    known = backend_modules()
    return {name: {t for mod, names, _ in imports(path) for t in targets(mod, names, known) if t != name}
            for name, path in known.items()}


def test_every_backend_module_has_a_place():
    for name in backend_modules():
        parts = name.split(".")
        assert len(parts) <= 3, f"{name}: nested deeper than neuronlab/STAGE/module"
        if len(parts) == 3:
            assert parts[1] in STAGES + FRONT_PACKAGES, f"{name}: {parts[1]} is not a stage ({', '.join(STAGES)})"


def test_no_stage_imports_a_later_stage():
    wrong = [f"{a} imports {b}" for a, deps in graph().items() for b in deps
             if stage(a) <= len(STAGES) and stage(b) > stage(a)]
    assert not wrong, wrong


def test_no_import_cycles():
    edges, state, cycles = graph(), {}, []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [node, nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, path + [node])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert not cycles, cycles


def test_the_backend_never_imports_streamlit():
    wrong = [f"{name}:{line}" for name, path in backend_modules().items() for mod, _, line in imports(path)
             if mod.split(".")[0] == "streamlit"]
    assert not wrong, wrong


def python_files() -> list[Path]:
    return [ROOT / "app.py", *sorted(PACKAGE.rglob("*.py")), *sorted((ROOT / "webui").rglob("*.py"))]


def test_no_private_names_imported_across_modules():
    wrong = [f"{p.relative_to(ROOT)}:{line} imports {n} from {mod}"
             for p in [*python_files(), *sorted((ROOT / "bench").glob("*.py"))]
             for mod, names, line in imports(p) for n in names if n.startswith("_") and not n.startswith("__")]
    assert not wrong, wrong


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by what its parts do"


def test_streamlit_lives_in_webui_and_app_only():
    top = [p.name for p in ROOT.glob("*.py") if "streamlit" in p.read_text(encoding="utf-8") and p.name != "app.py"]
    assert not top, f"Streamlit code at the top level: {top}; it belongs in webui/"


def test_no_test_module_imports_another():
    """Shared test helpers live in tests/support (fixtures in tests/conftest.py); a test module importing
    another runs that module's imports and couples the two, so none does (conftest included)."""
    tests = ROOT / "tests"
    own = {p.stem for p in tests.glob("test_*.py")} | {"conftest"}

    def loads(module: str, names: list[str]) -> list[str]:
        parts = module.split(".")
        if parts[0] in own:  # import test_x / from test_x import ... (tests/ on sys.path)
            return [parts[0]]
        if parts[0] == "tests" and len(parts) > 1 and parts[1] in own:  # tests.test_x, from .test_x import ...
            return [parts[1]]
        return [n for n in names if n in own] if module == "tests" else []  # from tests import test_x

    wrong = [f"{p.relative_to(ROOT)}:{line} imports {t}" for p in sorted(tests.glob("test_*.py"))
             for mod, names, line in imports(p) for t in loads(mod, names)]
    assert not wrong, wrong
