"""Project hygiene: stripped notebooks, parameter files, lint, and environment files in step."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml

from sparkify_utils import artifacts, paths
from sparkify_utils.runtime.params import load_params_file, notebook_parameters, split_by_notebook

NOTEBOOKS = [paths.NOTEBOOKS_DIR / f"{name}.ipynb" for name in artifacts.STEPS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [
        i
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; strip them (executed copies live in outputs/)"
    assert nb["metadata"]["kernelspec"]["name"] == paths.KERNEL_NAME


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_declares_common_parameters(path):
    params = notebook_parameters(path)
    assert "run_dir" in params and params["run_dir"] == ""


def test_every_params_file_is_valid_for_the_notebooks():
    declared = {p.stem: notebook_parameters(p) for p in NOTEBOOKS}
    files = sorted(paths.PARAMS_DIR.glob("*.yaml"))
    assert {"default.yaml", "ci.yaml"} <= {f.name for f in files}
    for path in files:
        split_by_notebook(load_params_file(path), declared)


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(paths.PROJECT_ROOT / ".venv/bin")) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: pip install -e .[dev]")
    result = subprocess.run([ruff, "check", "."], cwd=paths.PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_environment_yml_follows_pyproject():
    env = yaml.safe_load((paths.PROJECT_ROOT / "environment.yml").read_text())
    project = tomllib.loads((paths.PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    python = next(d for d in conda if d.startswith("python="))
    major_minor = tuple(int(x) for x in python.split("=")[1].split(".")[:2])
    low, high = re.findall(r"(\d+)\.(\d+)", project["requires-python"])
    assert tuple(map(int, low)) <= major_minor < tuple(map(int, high))
    assert any(d.startswith("openjdk=17") for d in conda)
    # Python packages come from the lock only (tests/test_environment.py checks the lock against pyproject).
    assert pip == ["-r requirements/lock.txt"]
    assert "dev" in project["optional-dependencies"]


def test_ci_runs_the_readme_test_command():
    readme = (paths.PROJECT_ROOT / "README.md").read_text()
    ci = (paths.PROJECT_ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and re.search(r"^make test$", ci, re.M)


@pytest.mark.slow  # starts a Spark driver of its own
def test_pyspark_with_this_pandas_raises_no_warnings():
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "from sparkify_utils.runtime.session import get_spark\n"
        "spark = get_spark('local[1]', spark_conf={'spark.ui.enabled': 'false'})\n"
        "print(spark.range(3).toPandas().shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    noisy = [line for line in result.stderr.splitlines() if "Warning" in line and "pandas" in line.lower()]
    assert not noisy, noisy


def test_worker_groups_keep_the_notebooks_with_the_tests_that_read_their_outputs():
    from conftest import WITH_NOTEBOOKS, worker_group

    assert worker_group("notebooks/01_eda.ipynb::01_eda.ipynb") == "notebooks"
    assert {worker_group(f"{path}::test_x") for path in WITH_NOTEBOOKS} == {"notebooks"}
    assert worker_group("tests/test_load.py::test_x[a::b]") == "tests/test_load.py"
    assert worker_group("tests/test_cluster.py::test_x") == "tests/test_cluster.py"
