"""The lock file pins the whole environment that pyproject.toml describes, and environment.yml installs it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
UV_PIN = ROOT / "requirements" / "uv.txt"


def locked(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Requirement name -> [(version, the whole entry)], from a `uv pip compile --generate-hashes` file."""
    text = re.sub(r"\\\n", " ", path.read_text())  # join continuation lines
    entries: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        assert match, f"{path.name}: not an exact pin: {line[:100]}"
        entries.setdefault(canonicalize_name(match[1]), []).append((match[2], line))
    return entries


def project_requirements() -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    specs = [*pyproject["build-system"]["requires"], *project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        specs += extra
    return [Requirement(spec) for spec in specs]


def test_lock_pins_every_entry_with_hashes():
    for path in (LOCK, UV_PIN):
        entries = locked(path)
        assert entries, f"{path.name} is empty"
        for versions in entries.values():
            for _, entry in versions:
                assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"{path.name}: no hash in {entry[:100]}"


@pytest.mark.parametrize("requirement", project_requirements(), ids=str)
def test_lock_pins_each_pyproject_dependency_within_its_range(requirement):
    versions = locked(LOCK).get(canonicalize_name(requirement.name))
    assert versions, f"{requirement.name} is not in requirements/lock.txt: run `make lock`"
    for version, _ in versions:
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements/lock.txt pins {requirement.name}=={version}, outside {requirement}: run `make lock`"
        )


def test_lock_names_no_index_or_local_file():
    # The lock must install from PyPI (or whatever index the user configures), on any machine.
    for path in (LOCK, UV_PIN):
        text = path.read_text()
        assert not re.search(r"^\s*(-i|--index-url|--extra-index-url|-f|--find-links)\b", text, re.M), path.name
        assert "file:" not in text and " @ " not in text, path.name


def test_makefile_bootstraps_the_pinned_uv():
    version = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)[1]
    assert [v for v, _ in locked(UV_PIN)["uv"]] == [version]


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {d.split("=")[0] for d in conda} == {"python", "openjdk", "pip"}
    assert pip == ["-r requirements/lock.txt"]
