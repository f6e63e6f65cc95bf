"""Imports point one way, `gateway → edge ← cloud`, and only at the public surface of `edge`;
inside `cloud`, the layers of docs/architecture.md.

The rules, checked on the source with `ast` (so an import inside a function, or under
`if TYPE_CHECKING:`, counts as much as one at the top):

- `edge` imports neither `gateway` nor `cloud`;
- `gateway` and `cloud` do not import each other;
- from `edge`, `cloud` imports only `edge.contract`, and `gateway` only `edge.contract`,
  `edge.drivers` and `edge.simulators`;
- in `cloud`: `core` imports nothing of ours but `edge.contract`; `io` imports `core`; a feature
  (every other package but `apps` and `dev`) imports `core`, `io` and itself, never another
  feature; `dev` is imported only by `apps.demo` (and by tests, which are outside `cloud`);
  `apps` wires everything; and no module of `cloud` takes part in an import cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edge", "gateway", "cloud")
# What each package may import from the others; a prefix allows its submodules too.
ALLOWED: dict[str, tuple[str, ...]] = {
    "edge": (),
    "gateway": ("edge.contract", "edge.drivers", "edge.simulators"),
    "cloud": ("edge.contract",),
}
# Dynamic imports by a constant name dodge the `import` statement, not the rule.
DYNAMIC_IMPORTERS = {"import_module", "__import__"}


@dataclass(frozen=True, slots=True)
class Import:
    path: Path
    line: int
    target: str  # dotted name: the module, or module.name for `from module import name`

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.target}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Every import in one file, relative ones resolved to absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    shown = path.relative_to(root)
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(shown, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: max(0, len(base) - (node.level - 1))]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                yield Import(shown, node.lineno, module if alias.name == "*" else f"{module}.{alias.name}")
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) in DYNAMIC_IMPORTERS
        ):
            yield Import(shown, node.lineno, node.args[0].value)


def violations(root: Path) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for imp in imports_of(path, root):
                top = imp.target.split(".")[0]
                if top == package or top not in PACKAGES:
                    continue
                if not any(imp.target == ok or imp.target.startswith(f"{ok}.") for ok in ALLOWED[package]):
                    found.append(
                        f"{imp}: {package} may import only {', '.join(ALLOWED[package]) or 'itself'}"
                    )
    return found


def source_files(root: Path) -> list[Path]:
    return [path for package in PACKAGES for path in (root / package).rglob("*.py")]


def test_the_imports_point_one_way_and_at_the_public_surface_of_edge() -> None:
    assert any(p.parts[-3:] == ("edge", "contract", "__init__.py") for p in source_files(ROOT))

    found = violations(ROOT)

    assert not found, "imports against the architecture:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("path", "source", "offence"),
    [
        ("edge/drivers/nmea.py", "import gateway.agent\n", "edge/drivers/nmea.py:1: imports gateway.agent"),
        ("edge/cli.py", "def f():\n    from cloud import cli\n", "edge/cli.py:2: imports cloud.cli"),
        ("gateway/agent.py", "from cloud.settings import CloudSettings\n", "imports cloud.settings"),
        ("cloud/rules/engine.py", "import gateway\n", "cloud/rules/engine.py:1: imports gateway"),
        ("cloud/ingest/consumer.py", "from edge.drivers import registry\n", "imports edge.drivers.registry"),
        ("cloud/ingest/consumer.py", "from edge import drivers\n", "imports edge.drivers"),
        ("cloud/ingest/consumer.py", "import edge\n", "imports edge:"),
        ("cloud/ingest/consumer.py", "import edge.contractual\n", "imports edge.contractual"),
        ("gateway/agent.py", "from edge.transports.serial import Port\n", "imports edge.transports.serial"),
        ("gateway/agent.py", "from ..cloud import settings\n", "imports cloud.settings"),
        ("cloud/cli.py", "import importlib\nimportlib.import_module('gateway.cli')\n", "imports gateway.cli"),
        (
            "gateway/config.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cloud import settings\n",
            "gateway/config.py:3: imports cloud.settings",
        ),
    ],
)
def test_the_import_checker_reports_a_forbidden_import_with_file_and_line(
    tmp_path: Path, path: str, source: str, offence: str
) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(source, encoding="utf-8")

    found = violations(tmp_path)

    assert len(found) == 1, found
    assert offence in found[0]


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("gateway/agent.py", "from edge.contract import Batch, topics\n"),
        ("gateway/agent.py", "from edge.drivers import registry\nimport edge.simulators.clock\n"),
        ("gateway/agent.py", "from edge import contract\n"),
        ("cloud/ingest/consumer.py", "from edge.contract.codec import decode\n"),
        ("cloud/ingest/consumer.py", "from . import deadletter\nfrom ..influx import client\n"),
        ("edge/drivers/nmea/decoder.py", "from ...contract import Reading\nimport json\n"),
    ],
)
def test_the_import_checker_allows_what_the_arrows_allow(tmp_path: Path, path: str, source: str) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(source, encoding="utf-8")

    assert violations(tmp_path) == []


# --- the layers of cloud/ ----------------------------------------------------------------------

KERNEL, ADAPTERS, WIRING, DEV = "core", "io", "apps", "dev"
# Each exception names who imports what and why it is right; none today.
LAYER_EXCEPTIONS: dict[tuple[str, str], str] = {}


def room(module: str) -> str:
    """`cloud.worksites.store` → `worksites`: the package directly under `cloud`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "cloud" else ""


def cloud_modules(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted((root / "cloud").rglob("*.py"))}


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The module an import loads: `cloud.x.y.name` is `cloud.x.y` when `name` is no module."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def layer_offence(module: str, target: str) -> str | None:
    """Why `module` may not import `target` (both in `cloud`), or None when it may: the first
    rule that applies decides."""
    here, there = room(module), room(target)
    rules: list[tuple[bool, str | None]] = [
        (there == here or (module, target) in LAYER_EXCEPTIONS, None),
        (here == KERNEL, "core imports nothing of ours but edge.contract"),
        (
            there == DEV and module != "cloud.apps.demo",
            "dev is imported only by cloud.apps.demo and tests",
        ),
        (here == WIRING or there == KERNEL, None),
        (here == ADAPTERS, "io imports only core"),
        # dev builds on what it serves: demo data for the features, servers for the tests
        (there == ADAPTERS or (here == DEV and there != WIRING), None),
    ]
    default = f"a feature ({here}) imports only core, io and itself, not {there}"
    return next((why for applies, why in rules if applies), default)


def layer_violations(root: Path) -> list[str]:
    modules = cloud_modules(root)
    found = []
    for module, path in modules.items():
        for imp in imports_of(path, root):
            if imp.target == "edge" or imp.target.startswith("edge."):
                if room(module) == KERNEL and not imp.target.startswith("edge.contract"):
                    found.append(f"{imp}: core imports only edge.contract")
                continue
            target = resolve(imp.target, modules)
            why = layer_offence(module, target) if target is not None else None
            if why is not None:
                found.append(f"{imp}: {why}")
    return found


def import_cycles(root: Path) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), or a module importing
    itself: every import cycle in `cloud`."""
    modules = cloud_modules(root)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for imp in imports_of(path, root):
            target = resolve(imp.target, modules)
            if target is not None and target != module:
                graph[module].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def function_local_imports(root: Path, package: str) -> list[str]:
    out = []
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                out += [
                    f"{path.relative_to(root)}:{node.lineno}"
                    for node in ast.walk(fn)
                    if isinstance(node, ast.Import | ast.ImportFrom)
                ]
    return out


def test_cloud_keeps_its_layers_core_io_features_apps() -> None:
    found = layer_violations(ROOT)

    assert not found, "imports against the layers of cloud/ (docs/architecture.md):\n" + "\n".join(found)


def test_no_module_of_cloud_takes_part_in_an_import_cycle() -> None:
    assert import_cycles(ROOT) == []


def test_cloud_imports_at_the_top_of_its_modules() -> None:
    # The one lazy group is the `sitroom` root (edge/cli.py): it imports a package's commands
    # only when they run, so no module needs to defer an import to keep `--help` fast.
    assert function_local_imports(ROOT, "cloud") == []


@pytest.mark.parametrize(
    ("path", "source", "offence"),
    [
        ("cloud/core/geo.py", "from cloud.worksites import store\n", "core imports nothing of ours"),
        ("cloud/core/geo.py", "import edge.drivers\n", "core imports only edge.contract"),
        ("cloud/io/mqtt.py", "from cloud.rules.store import AlertStore\n", "io imports only core"),
        ("cloud/rules/api.py", "from cloud.worksites.deps import CallerDep\n", "a feature (rules)"),
        ("cloud/console/live.py", "def f():\n    from cloud.rules import store\n", "not rules"),
        ("cloud/worksites/cli.py", "from cloud.dev.servers import free_port\n", "dev is imported only"),
        ("cloud/apps/api.py", "from cloud.dev.demo_data import load_demo\n", "dev is imported only"),
    ],
)
def test_the_layer_checker_reports_an_import_against_the_layers(
    tmp_path: Path, path: str, source: str, offence: str
) -> None:
    for module in ("cloud/worksites/store.py", "cloud/worksites/deps.py", "cloud/rules/store.py",
                   "cloud/dev/servers.py", "cloud/dev/demo_data.py", path):  # fmt: skip
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).touch()
    (tmp_path / path).write_text(source, encoding="utf-8")

    found = layer_violations(tmp_path)

    assert len(found) == 1, found
    assert offence in found[0]


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("cloud/core/geo.py", "from edge.contract import Reading\nfrom cloud.core import orgs\n"),
        ("cloud/io/mqtt.py", "from cloud.core.alerts import Alert\n"),
        ("cloud/rules/api.py", "from cloud.core.alerts import Alert\nfrom cloud.io.http import CallerDep\n"),
        ("cloud/apps/demo.py", "from cloud.dev.servers import free_port\nfrom cloud.rules.store import S\n"),
        ("cloud/apps/api.py", "from cloud.worksites.store import WorksiteStore\n"),
    ],
)
def test_the_layer_checker_allows_what_the_layers_allow(tmp_path: Path, path: str, source: str) -> None:
    for module in ("cloud/core/orgs.py", "cloud/core/alerts.py", "cloud/io/http.py", "cloud/rules/store.py",
                   "cloud/worksites/store.py", "cloud/dev/servers.py", path):  # fmt: skip
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).touch()
    (tmp_path / path).write_text(source, encoding="utf-8")

    assert layer_violations(tmp_path) == []


def test_the_cycle_finder_reports_modules_that_import_each_other(tmp_path: Path) -> None:
    (tmp_path / "cloud" / "console").mkdir(parents=True)
    (tmp_path / "cloud" / "console" / "app.py").write_text("def f():\n    from cloud.console import api\n")
    (tmp_path / "cloud" / "console" / "api.py").write_text("from cloud.console.app import Console\n")

    assert import_cycles(tmp_path) == [["cloud.console.api", "cloud.console.app"]]
