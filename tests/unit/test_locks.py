"""The locks (requirements/README.md) agree with what they are resolved from:
every environment installs exact versions checked against their hashes, the
demo's and the Lambda layer's at the development lock's versions, the demo
without the test tooling, and the layer's package imports only what the
layer's lock ships."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import PROJECT_DIR

REQUIREMENTS = PROJECT_DIR / "requirements"
DEV, DEMO, SAM, UV = (REQUIREMENTS / f"{name}.txt" for name in ("dev", "demo", "sam", "uv"))
LAYER = PROJECT_DIR / "layers" / "nurture" / "requirements.txt"
LOCKS = [DEV, DEMO, LAYER, SAM, UV]
PYPROJECT = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def entries(lock: Path) -> list[str]:
    """The lock's requirement lines, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", lock.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def pins(lock: Path) -> dict[str, str]:
    """Package -> version: the whole lock, whatever the platform (a universal lock may
    hold one package twice, under exclusive markers: the last one wins here)."""
    found = {}
    for line in entries(lock):
        name, version = re.match(r"([A-Za-z0-9._-]+)==([^\s;]+)", line).groups()
        found[canonical(name)] = version
    return found


def project_requirements(*extras: str) -> list[Requirement]:
    listed = PYPROJECT["project"]["dependencies"] + [
        spec for extra in extras for spec in PYPROJECT["project"]["optional-dependencies"][extra]
    ]
    return [req for req in map(Requirement, listed) if canonical(req.name) != "nurture"]


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: str(path.relative_to(PROJECT_DIR)))
def test_every_lock_pins_exact_versions_with_hashes(lock):
    for line in entries(lock):
        assert re.match(r"[A-Za-z0-9._-]+==[^\s;*]+ ", line), f"{lock.name}: not an exact pin: {line[:80]}"
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", line), f"{lock.name}: no hash: {line[:80]}"


# What the Lambda runtime (Python 3.11) provides, so the layer does not ship it.
RUNTIME_PROVIDED = {"boto3", "botocore"}


def layer_requirements() -> list[Requirement]:
    """requirements/layer.in: what the layer ships."""
    lines = (REQUIREMENTS / "layer.in").read_text().splitlines()
    return [Requirement(line) for line in (line.split("#")[0].strip() for line in lines) if line]


def test_the_layer_ships_pyprojects_dependencies_but_what_the_runtime_provides():
    layer = {canonical(req.name): str(req.specifier) for req in layer_requirements()}
    wanted = {canonical(req.name): str(req.specifier) for req in project_requirements()}
    assert layer == {name: spec for name, spec in wanted.items() if name not in RUNTIME_PROVIDED}


@pytest.mark.parametrize(
    ("lock", "requirements"),
    [
        (DEV, lambda: project_requirements("local", "dev")),
        (DEMO, lambda: project_requirements("local")),
        (LAYER, layer_requirements),
    ],
    ids=["dev", "demo", "layer"],
)
def test_each_lock_holds_what_pyproject_asks_for(lock, requirements):
    # Given what pyproject.toml declares for the environment, and its lock
    locked = pins(lock)

    # Then every requirement is locked at a version it accepts (a stale lock fails here)
    for requirement in requirements():
        name = canonical(requirement.name)
        assert name in locked, f"{requirement} is not in {lock.name}: run `make lock`"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"{lock.name} locks {name}=={locked[name]}, pyproject.toml asks for {requirement}: run `make lock`"
        )


@pytest.mark.parametrize("lock", [DEMO, LAYER], ids=["demo", "layer"])
def test_the_demo_and_the_layer_run_the_versions_the_tests_run(lock):
    dev = pins(DEV)
    differ = {name: (version, dev.get(name)) for name, version in pins(lock).items() if dev.get(name) != version}
    assert differ == {}, f"{lock.name} and dev.txt disagree (theirs, dev's): {differ}"


def test_the_demo_installs_no_test_tooling():
    tooling = {"pytest", "cfn-lint", "aws-sam-translator", "playwright", "ruff", "import-linter"}
    assert tooling & set(pins(DEMO)) == set()


def test_the_api_function_ships_the_chalice_the_tests_run():
    # functions/api/Makefile takes Chalice's runtime modules from the wheel this pins by hash
    pinned = (PROJECT_DIR / "functions" / "api" / "chalice-runtime.txt").read_text()
    assert f"chalice=={pins(DEV)['chalice']} " in pinned


def test_the_project_builds_with_the_locked_setuptools():
    # `pip install --no-build-isolation -e .` builds with what the lock installed
    build_in = [line for line in entries(REQUIREMENTS / "build.in")]
    assert build_in == PYPROJECT["build-system"]["requires"]


def _third_party_imports(package: Path) -> dict[str, str]:
    """Top-level module -> a file importing it, for every absolute import outside
    the standard library, at module level or inside functions."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "nurture":
                    found.setdefault(top, str(path.relative_to(PROJECT_DIR)))
    return found


def test_the_layer_imports_only_what_the_layer_ships():
    # Given every module the layer's package imports and the distributions providing them here
    providers = packages_distributions()
    shipped = set(pins(LAYER))

    # Then each comes from a distribution the layer's lock installs
    for module, where in _third_party_imports(PROJECT_DIR / "layers" / "nurture" / "nurture").items():
        if module in RUNTIME_PROVIDED:
            continue
        assert module in providers, f"{where} imports {module}, which no installed distribution provides"
        assert {canonical(dist) for dist in providers[module]} & shipped, (
            f"{where} imports {module} ({', '.join(providers[module])}), which the layer does not ship: "
            "add it to pyproject.toml's dependencies and run `make lock`"
        )
