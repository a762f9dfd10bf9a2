"""The LSP layer has no import cycles: feature modules import the server module for types only
(under TYPE_CHECKING), the server module imports none of the features it is assembled with
(lsp/app.py does), nothing but the assembly imports the command registry, and the engine
(`core/`) imports nothing from the adapters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "server" / "agentls"
LSP_MODULES = sorted(p for p in (PACKAGE / "lsp").glob("*.py") if p.name != "__init__.py")
# The server's state, and the assembly that registers every feature on it.
CORE = ("server.py", "app.py")


def runtime_imports(path: Path) -> set[str]:
    """Modules imported outside `if TYPE_CHECKING:` blocks (inside functions too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


@pytest.mark.parametrize(
    "module", [p for p in LSP_MODULES if p.name not in CORE], ids=lambda p: p.name
)
def test_features_import_the_server_module_for_types_only(module: Path) -> None:
    assert "agentls.lsp.server" not in runtime_imports(module)


def test_the_server_module_imports_no_feature() -> None:
    features = {f"agentls.lsp.{p.stem}" for p in LSP_MODULES if p.name not in CORE}
    # Its helpers (state of folders, settings, the protocol class) are not features.
    helpers = {"agentls.lsp.folders", "agentls.lsp.protocol", "agentls.lsp.settings"}
    assert runtime_imports(PACKAGE / "lsp" / "server.py") & features <= helpers


@pytest.mark.parametrize(
    "module", [p for p in LSP_MODULES if p.name not in CORE], ids=lambda p: p.name
)
def test_only_the_assembly_imports_the_command_registry(module: Path) -> None:
    assert "agentls.lsp.commands" not in runtime_imports(module)


@pytest.mark.parametrize("module", sorted((PACKAGE / "core").rglob("*.py")), ids=lambda p: p.name)
def test_the_engine_imports_no_adapter(module: Path) -> None:
    adapters = ("agentls.lsp", "agentls.cli", "agentls.mcp_server", "agentls.acp")
    assert not [m for m in runtime_imports(module) if m.startswith(adapters)]
