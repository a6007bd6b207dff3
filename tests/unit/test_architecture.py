"""The architecture's contracts cover every package: a new concern cannot
escape the layering by being left out of pyproject.toml's contracts."""

from __future__ import annotations

import tomllib

from tests.conftest import PROJECT_DIR

PACKAGE_DIR = PROJECT_DIR / "layers" / "nurture" / "nurture"


def test_every_package_of_nurture_has_its_place_in_the_layers():
    # Given the layers contract and the packages on disk
    contracts = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [contract["layers"] for contract in contracts if contract["type"] == "layers"]
    named = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    on_disk = {f"nurture.{path.parent.name}" for path in PACKAGE_DIR.glob("*/__init__.py")}
    on_disk |= {f"nurture.{path.stem}" for path in PACKAGE_DIR.glob("*.py") if path.stem != "__init__"}

    # Then each is in exactly the layers, and nothing else sits at the top
    assert on_disk == named, f"not in a layer: {sorted(on_disk - named)}; no such package: {sorted(named - on_disk)}"


def test_the_layer_ships_no_tooling():
    # The local stack, demo, report, dashboard generator and command line live in nurture_tools
    shipped = {path.relative_to(PACKAGE_DIR).as_posix() for path in PACKAGE_DIR.rglob("*.py")}
    tooling = [p for p in shipped if p.split("/")[0] in ("local", "cli.py", "report.py", "dashboard.py", "export.py")]
    assert tooling == []
