"""agentls as users install it: the wheel and sdist built from this tree, installed into a fresh
environment (pip in a new venv, and `uvx --from WHEEL` as the ACP registry launches Python
agents), then `agentls serve`, `agentls acp` and `agentls mcp-server` answer their clients. Also
the ACP registry entry kept in `acp-registry/`, checked against pyproject.toml and the CLI.

The installs resolve agentls's dependencies from the package index pip is configured with (and
uv's default, the same PyPI), with the machine's pip and uv caches: the first run downloads, later
ones take about 45 s (build and pip) and 8 s (uv). Marked `packaging` and `slow`; one venv per
session.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from tests.rig.scripted_openai import ScriptedOpenAI, Text
from tests.test_acp_sdk import Panel

import acp

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
ENTRY = ROOT / "acp-registry" / "agentls"
CALC = "def add(a, b):\n    return a + b\n"


def packaging(test: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a test that needs the built wheel: `packaging`, `slow`, and a longer timeout (the
    first of a session builds and installs, minutes with a cold package cache)."""
    for mark in (pytest.mark.packaging, pytest.mark.slow, pytest.mark.timeout(900)):
        test = mark(test)
    return test


def test_every_python_package_is_listed_in_pyproject() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    source = ROOT / "server"
    found = {
        ".".join(init.parent.relative_to(source).parts)
        for init in source.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


# --- the ACP registry entry --------------------------------------------------------------------


def test_the_registry_entry_launches_this_version_with_the_acp_command() -> None:
    entry = json.loads((ENTRY / "agent.json").read_text(encoding="utf-8"))
    assert entry["id"] == ENTRY.name and re.fullmatch(r"[a-z][a-z0-9-]*", entry["id"])
    assert entry["version"] == VERSION
    assert entry["name"] and entry["description"]
    assert set(entry) <= {
        "id",
        "name",
        "version",
        "description",
        "repository",
        "website",
        "authors",
        "license",
        "license_url",
        "distribution",
    }
    assert entry["distribution"] == {
        "uvx": {"package": f"{PYPROJECT['project']['name']}=={VERSION}", "args": ["acp"]}
    }
    # `uvx NAME==V acp` runs the console script named after the package, with `acp`.
    assert PYPROJECT["project"]["scripts"][PYPROJECT["project"]["name"]] == "agentls.cli:main"
    helped = subprocess.run(
        [sys.executable, "-m", "agentls", "--help"], capture_output=True, text=True, check=True
    )
    assert re.search(r"^\s+acp\s+run as an Agent Client Protocol agent", helped.stdout, re.M)


def test_the_registry_icon_is_16_by_16_in_current_color() -> None:
    text = (ENTRY / "icon.svg").read_text(encoding="utf-8")
    assert "<!--" not in text  # the registry embeds icons in its docs
    root = ET.fromstring(text)
    assert root.tag.rsplit("}", 1)[-1] == "svg"
    assert (root.get("width"), root.get("height")) == ("16", "16")
    assert root.get("viewBox") == "0 0 16 16"
    paints = [
        e.get(attribute, "").strip().lower()
        for e in root.iter()
        for attribute in ("fill", "stroke")
        if e.get(attribute) is not None
    ]
    assert "currentcolor" in paints
    assert set(paints) <= {"currentcolor", "none", "inherit"}  # nothing the theme cannot recolour
    assert "style" not in text


# --- built and installed as users install it ---------------------------------------------------


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


def real_caches() -> dict[str, str]:
    """The machine's pip and uv caches (tests run with a throwaway HOME)."""
    cache = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache"
    return {"PIP_CACHE_DIR": str(cache / "pip"), "UV_CACHE_DIR": str(cache / "uv")}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a program a panel starts: nothing of this tree or this venv."""
    dropped = ("PYTHON", "VIRTUAL_ENV", "OPENAI_", "AGENTLS_", "PIP_", "UV_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return env | real_caches() | extra


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """`python -m build` on a copy of the tree: the sdist, then the wheel built from the sdist
    (so the wheel holds only what the sdist carries)."""
    base = tmp_path_factory.mktemp("dist")
    source = base / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", ".agentls")
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("server", "agents"):
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=skip)
    out = base / "out"
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        env=clean_env(),
        timeout=600,
    )
    (wheel,) = out.glob("agentls-*.whl")
    (sdist,) = out.glob("agentls-*.tar.gz")
    return Dist(wheel, sdist)


@pytest.fixture(scope="session")
def installed(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its dependencies, and nothing else: its bin folder."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # This pip, pointed at the new venv (`--python`): the same install as the venv's own pip
    # would make, without first installing pip into it.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--quiet",
            str(dist.wheel),
        ],
        check=True,
        capture_output=True,
        env=clean_env(),
        timeout=900,
    )
    return venv / "bin"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "calc.py").write_text(CALC, encoding="utf-8")
    return root


def model_env(model: ScriptedOpenAI) -> dict[str, str]:
    return clean_env(
        OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=model.url, AGENTLS_MODEL="scripted-model"
    )


@packaging
def test_the_sdist_and_the_wheel_carry_the_builtin_agents(dist: Dist) -> None:
    shipped = {p.name for p in (ROOT / "agents").glob("*.yaml")}
    assert shipped
    wheel = {
        Path(n).name
        for n in zipfile.ZipFile(dist.wheel).namelist()
        if n.startswith("agentls/builtin_agents/")
    }
    assert shipped <= wheel
    import tarfile

    with tarfile.open(dist.sdist) as sdist:
        names = {Path(n).name for n in sdist.getnames() if "/server/agentls/builtin_agents/" in n}
    assert shipped <= names


@asynccontextmanager
async def panel_agent(
    panel: Panel, command: str, *args: str, env: dict[str, str], cwd: Path
) -> AsyncIterator[tuple[Any, str]]:
    """An agent panel's view: the agent started by `command`, initialized, one session."""
    async with acp.spawn_agent_process(panel, command, *args, env=env, cwd=cwd) as (conn, _):  # type: ignore[arg-type]
        await conn.initialize(protocol_version=acp.PROTOCOL_VERSION)
        session = await conn.new_session(cwd=str(cwd))
        yield conn, session.session_id


async def ask_about_calc(conn: Any, session_id: str, workspace: Path) -> Any:
    link = acp.resource_link_block(name="calc.py", uri=(workspace / "calc.py").as_uri())
    return await conn.prompt(
        session_id=session_id, prompt=[acp.text_block("/explain what does add do?"), link]
    )


@packaging
async def test_installed_acp_answers_a_prompt(
    installed: Path, workspace: Path, model: ScriptedOpenAI
) -> None:
    model.enqueue(Text("add returns the sum of a and b"))
    panel = Panel()
    env = model_env(model)
    async with panel_agent(panel, str(installed / "agentls"), "acp", env=env, cwd=workspace) as (
        conn,
        sid,
    ):
        response = await ask_about_calc(conn, sid, workspace)
    assert response.stop_reason == "end_turn"
    assert "add returns the sum of a and b" in panel.text()
    assert "def add(a, b)" in model.requests[0]["messages"][1]["content"]


@packaging
async def test_installed_acp_without_a_model_says_where_to_set_one(
    installed: Path, workspace: Path
) -> None:
    # A panel starts agentls with neither the shell's variables nor the embedded model.
    panel = Panel()
    env = clean_env(HOME=str(workspace.parent))
    async with panel_agent(panel, str(installed / "agentls"), "acp", env=env, cwd=workspace) as (
        conn,
        sid,
    ):
        await ask_about_calc(conn, sid, workspace)
    said = panel.text() + json.dumps([u.model_dump(mode="json") for u in panel.updates])
    assert "No model is configured" in said
    for needed in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTLS_MODEL", "settings.json"):
        assert needed in said
    assert "setup.sh" not in said


@packaging
def test_installed_serve_answers_initialize(installed: Path, workspace: Path) -> None:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {}},
        }
    ).encode()
    exit_ = [
        {"jsonrpc": "2.0", "id": 2, "method": "shutdown"},
        {"jsonrpc": "2.0", "method": "exit"},
    ]
    frames = b"".join(
        b"Content-Length: %d\r\n\r\n%s" % (len(m), m)
        for m in [body, *(json.dumps(e).encode() for e in exit_)]
    )
    done = subprocess.run(
        [str(installed / "agentls"), "serve"],
        input=frames,
        capture_output=True,
        env=clean_env(),
        cwd=workspace,
        timeout=120,
    )
    first = done.stdout.split(b"\r\n\r\n", 1)[1]
    answer = json.loads(first[: int(done.stdout.split(b"\r\n")[0].split(b":")[1])])
    assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"] == "agentls"
    assert "executeCommandProvider" in answer["result"]["capabilities"]


@packaging
async def test_installed_mcp_server_lists_its_tools(installed: Path, workspace: Path) -> None:
    params = StdioServerParameters(
        command=str(installed / "agentls"), args=["--workspace", str(workspace), "mcp-server"]
    )
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names == {"list_agents", "delegate", "delegate_parallel", "create_agent", "budget"}


@packaging
async def test_uvx_runs_the_wheel_as_the_registry_launches_agents(
    dist: Dist, workspace: Path, model: ScriptedOpenAI
) -> None:
    uvx = Path(sys.executable).parent / "uvx"  # PyPI's `uv` (the dev extra) ships it
    assert uvx.is_file(), "pip install uv (a dev dependency: pip install -e '.[dev]')"
    model.enqueue(Text("add returns the sum of a and b"))
    panel = Panel()
    # Its own environment from the wheel and the index; the Python it finds, never a download.
    env = model_env(model) | {"UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON": sys.executable}
    if index := os.environ.get("PIP_INDEX_URL"):
        env["UV_DEFAULT_INDEX"] = index
    async with panel_agent(
        panel,
        str(uvx),
        "--isolated",
        "--from",
        str(dist.wheel),
        "agentls",
        "acp",
        env=env,
        cwd=workspace,
    ) as (conn, sid):
        response = await ask_about_calc(conn, sid, workspace)
    assert response.stop_reason == "end_turn"
    assert "add returns the sum of a and b" in panel.text()


@packaging
async def test_pipx_runs_the_wheel_as_a_terminal_user_launches_it(
    dist: Dist, workspace: Path, model: ScriptedOpenAI, tmp_path: Path
) -> None:
    pipx = Path(sys.executable).parent / "pipx"
    assert pipx.is_file(), "pip install pipx (a dev dependency: pip install -e '.[dev]')"
    model.enqueue(Text("add returns the sum of a and b"))
    panel = Panel()
    # pipx's own home (its cached environment is made there), and the Python of this test run.
    env = model_env(model) | {
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_DEFAULT_PYTHON": sys.executable,
    }
    async with panel_agent(
        panel, str(pipx), "run", "--spec", str(dist.wheel), "agentls", "acp", env=env, cwd=workspace
    ) as (conn, sid):
        response = await ask_about_calc(conn, sid, workspace)
    assert response.stop_reason == "end_turn"
    assert "add returns the sum of a and b" in panel.text()
