"""A non-editable install ships every file of the operator app: pyproject.toml's
package-data once left out icon.svg (`/app/static/icon.svg` answered 404 after `pip install`)."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _shipped(pkg: Path, patterns: list[str]) -> set[Path]:
    # setuptools globs each pattern from the package's folder ("**" reaches down folders)
    return {p for pattern in patterns for p in pkg.glob(pattern) if p.is_file()}


def test_every_operator_app_file_is_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["lineguard"]
    pkg = ROOT / "src" / "lineguard"
    web = [p for p in (pkg / "server" / "web").rglob("*")
           if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".pyc")]
    assert any(p.name == "icon.svg" for p in web)
    missing = sorted(str(p.relative_to(pkg)) for p in web if p not in _shipped(pkg, patterns))
    assert not missing, f"not in pyproject.toml's package-data: {missing}"
