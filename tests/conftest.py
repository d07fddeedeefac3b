"""Shared fixtures, and the sandbox that keeps the suite away from the user's data/ and outputs/.

Every test, notebook run by nbmake, and Spark job sees ``SPARKIFY_DATA_DIR`` and
``SPARKIFY_OUTPUTS_DIR`` pointing into a temporary folder. When nbmake notebooks are collected,
the tiny CI log is generated there under the default input name, so the notebooks run unedited,
with their stored defaults, on tiny data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from sparkify_utils import paths as project
from sparkify_utils.runtime.session import get_spark

_SANDBOX = Path(tempfile.mkdtemp(prefix="sparkify-tests-"))


def pytest_configure() -> None:
    """Point the project's data and outputs at the sandbox for the whole session."""
    os.environ["SPARKIFY_DATA_DIR"] = str(_SANDBOX / "data")
    os.environ["SPARKIFY_OUTPUTS_DIR"] = str(_SANDBOX / "outputs")
    (_SANDBOX / "data").mkdir(exist_ok=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give nbmake's notebooks tiny data under the default input name, before any kernel starts."""
    if any(item.nodeid.endswith(".ipynb") for item in items):
        from sparkify_utils.synth.generate import generate_log

        users = project.EMBEDDED_LOGS["sparkify_ci.json"]
        generate_log(project.default_input_path(), users=users, seed=project.EMBEDDED_SEED, force=True)


def pytest_unconfigure() -> None:
    """Remove the sandbox unless asked to keep it (SPARKIFY_KEEP_TEST_OUTPUTS=1)."""
    if not os.environ.get("SPARKIFY_KEEP_TEST_OUTPUTS"):
        shutil.rmtree(_SANDBOX, ignore_errors=True)


@pytest.fixture(scope="session")
def spark():
    """A small local SparkSession shared by all tests."""
    session = get_spark(
        "local[2]", driver_memory="2g", app_name="sparkify-tests", shuffle_partitions=4,
        spark_conf={"spark.ui.enabled": "false"},
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def ci_run() -> Path:
    """One real run of the whole notebook sequence on params/ci.yaml (tiny data), shared by tests."""
    from sparkify_utils.runtime.runner import run

    return run(project.PARAMS_DIR / "ci.yaml", overrides=["spark_master=local[2]"])
