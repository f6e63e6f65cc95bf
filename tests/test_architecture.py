"""Imports point one way, `gateway → edge ← cloud`, and only at the public surface of `edge`.

The rules, checked on the source with `ast` (so an import inside a function, or under
`if TYPE_CHECKING:`, counts as much as one at the top):

- `edge` imports neither `gateway` nor `cloud`;
- `gateway` and `cloud` do not import each other;
- from `edge`, `cloud` imports only `edge.contract`, and `gateway` only `edge.contract`,
  `edge.drivers` and `edge.simulators`.
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
