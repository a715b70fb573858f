"""The wheel: built from the repo, installed into a fresh venv, every part imports and finds its package data from
a directory with no checkout. Also: every package folder is listed in pyproject's explicit `packages`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {
    "tools": "agentrm.tools", "prompts": "agentrm.prompts", "train": "agentrm.train", "configs": "agentrm.configs"
}

CHECK = r"""
import importlib, agentrm, pathlib, sys
root = pathlib.Path(agentrm.__file__).parent
assert "site-packages" in str(root), root
for name in ["agentrm.tools", "agentrm.prompts", "agentrm.train", "agentrm.configs", "agentrm.video",
             "agentrm.engines", "agentrm.eval", "agentrm.viewer", "agentrm.cli", "agentrm.data", "agentrm.testing"]:
    importlib.import_module(name)
from agentrm.prompting import TEMPLATES, Prompts
for t in TEMPLATES:
    assert Prompts().env.get_template(t)
from agentrm.config import ScoreConfig, load_config
load_config(ScoreConfig, "score.yaml")
from agentrm.tools import REGISTRY
assert set(REGISTRY) == {"select_frames", "select_range"}
static = root / "viewer" / "static" / "index.html"
assert static.is_file(), static
print("ok", root)
"""


def package_dirs() -> set[str]:
    found = set()
    for init in ROOT.glob("**/__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if rel.parts[0] in ("tests", "benchmarks", "build", ".venv") or any(p.startswith(".") for p in rel.parts):
            continue
        top = MAPPED.get(rel.parts[0], rel.parts[0])
        found.add(".".join([top, *rel.parts[1:]]))
    return found


def test_every_package_is_listed() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    missing = package_dirs() - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"


def test_wheel_works_from_anywhere(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    src = tmp_path / "src"  # build from a copy: setuptools leaves build/ and *.egg-info next to the sources
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                                             ".mypy_cache", ".ruff_cache", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(src)], check=True, capture_output=True)
    (wheel,) = wheels.glob("agentrm-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    # dependencies come from the test environment's site-packages via PYTHONPATH (.pth files, such as the
    # editable install's finder, are not processed there, so agentrm itself can only come from the wheel)
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run([py, "-c", CHECK], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok") and str(venv) in out.stdout
    cli = subprocess.run([venv / "bin" / "agentrm", "--help"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert cli.returncode == 0 and "score" in cli.stdout and "view" in cli.stdout
