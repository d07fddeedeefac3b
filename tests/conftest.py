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
from sparkify_utils.runtime.runner import QUICK_JVM_OPTIONS
from sparkify_utils.runtime.session import SPARK_REMOTE_ENV, get_spark

_SANDBOX = Path(tempfile.mkdtemp(prefix="sparkify-tests-"))
_NOTEBOOKS_COLLECTED = pytest.StashKey[bool]()
_FAILED_NOTEBOOKS: list[str] = []
#: How nbmake's notebooks get Spark (``--notebooks-spark``): each its own classic driver, or one shared server.
OWN, SHARED = "own", "shared"
#: The shared Spark Connect server of ``--notebooks-spark=shared``, started for this process's first notebook.
_NOTEBOOK_SERVER: list = []


#: JVM options of the short-lived JVMs the suite starts (notebook kernels' Spark drivers, Connect servers, the
#: cluster's master, workers and executors; not the shared ``spark`` fixture's): their Spark work is a few hundred
#: short jobs on tiny data, where the JVM's optimising compiler costs more CPU than it saves (measured: nbmake's
#: 01 and 02 in 60 s instead of 70 s). Results do not depend on the compiler (Java 17
#: floating point is strict), so the tests still check what a user's run computes. The runner's own options for a
#: small input, code cache size included.
TEST_JVM_OPTIONS = QUICK_JVM_OPTIONS


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--notebooks-spark``: how the notebooks run by nbmake get their Spark."""
    parser.addoption(
        "--notebooks-spark",
        choices=(OWN, SHARED),
        default=OWN,
        help=f"{OWN} (default): each notebook starts its own classic Spark driver, as in JupyterLab; {SHARED}: "
        "all attach to one local Spark Connect server, as in `make run` (quicker; the README says how)",
    )


def pytest_configure() -> None:
    """Point the project's data and outputs at the sandbox for the whole session; set the JVMs' options."""
    os.environ["SPARKIFY_DATA_DIR"] = str(_SANDBOX / "data")
    os.environ["SPARKIFY_OUTPUTS_DIR"] = str(_SANDBOX / "outputs")
    (_SANDBOX / "data").mkdir(exist_ok=True)
    os.environ["JAVA_TOOL_OPTIONS"] = f"{os.environ.get('JAVA_TOOL_OPTIONS', '')} {TEST_JVM_OPTIONS}".strip()


def _is_notebook(item: pytest.Item) -> bool:
    return item.nodeid.endswith(".ipynb")


#: Test modules that run on the notebooks' pytest-xdist worker, after them: they read the notebooks' outputs
#: (``interactive_run``) or the session's ``ci_run``, which that worker then makes once.
WITH_NOTEBOOKS = ("tests/test_sequence.py", "tests/test_dashboard_browser.py")
#: The longest module after that group: started first on the other worker.
_CLUSTER = "tests/test_cluster.py"


def worker_group(nodeid: str) -> str:
    """The tests that run together on one worker: the notebooks with ``WITH_NOTEBOOKS``, else each module's
    tests (so a costly module fixture is built once)."""
    path = nodeid.split("::", 1)[0]
    return "notebooks" if path.startswith("notebooks/") or path in WITH_NOTEBOOKS else path


def _check_worker_groups(items: list[pytest.Item]) -> None:
    """Refuse a test that reads the notebooks' or ``ci_run``'s outputs from a module of another worker group."""
    for item in items:
        shared = {"interactive_run", "ci_run"} & set(getattr(item, "fixturenames", ()))
        path = item.nodeid.split("::", 1)[0]
        if shared and worker_group(item.nodeid) != "notebooks":
            raise pytest.UsageError(
                f"{item.nodeid} uses {', '.join(sorted(shared))}: add {path} to WITH_NOTEBOOKS in tests/conftest.py "
                "so it runs on the notebooks' worker."
            )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run nbmake's notebooks first, on tiny data under the default input name, then their worker group and
    the cluster tests (the two longest groups, started first when the suite runs on two workers).

    First, because their outputs (``outputs/interactive``, written as a JupyterLab user's would be) are
    what the ``interactive_run`` tests compare with the runner's run, instead of a second full run.
    """
    _check_worker_groups(items)
    notebooks = [item for item in items if _is_notebook(item)]
    config.stash[_NOTEBOOKS_COLLECTED] = bool(notebooks)
    if notebooks:
        from sparkify_utils.synth.generate import generate_log

        users = project.EMBEDDED_LOGS["sparkify_ci.json"]
        generate_log(project.default_input_path(), users=users, seed=project.EMBEDDED_SEED, force=True)

    def rank(item: pytest.Item) -> int:
        group = worker_group(item.nodeid)
        return 0 if _is_notebook(item) else 1 if group == "notebooks" else 2 if group == _CLUSTER else 3

    items.sort(key=rank)  # stable: collection order within each rank


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """With pytest-xdist (``-n 2``), send each ``worker_group`` to one worker, groups in collection order.

    Not ``--dist loadgroup``: pytest-xdist 3.8 marks its groups by rewriting ``item._nodeid``, which pytest 9.2 no
    longer reads, so every group would be split.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkerGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    config.option.loadscopereorder = False  # keep the order above: the longest groups start first
    return ByWorkerGroup(config, log)


def _notebook_server_url() -> str:
    """The URL of this process's shared Spark Connect server for the notebooks, started on first use with the
    runner's settings for a small input (``--notebooks-spark=shared``)."""
    if not _NOTEBOOK_SERVER:
        from sparkify_utils.runtime.local_servers import connect_client_problem, start_connect_server
        from sparkify_utils.runtime.runner import run_shuffle_partitions, server_jvm_options

        problem = connect_client_problem()
        if problem:
            raise pytest.UsageError(f"--notebooks-spark={SHARED} needs a Spark Connect client: {problem}")
        size = project.default_input_path().stat().st_size
        _NOTEBOOK_SERVER.append(
            start_connect_server(
                master="local[2]",
                driver_memory="2g",
                conf={"spark.sql.shuffle.partitions": run_shuffle_partitions("local[2]", size, {})},
                java_options=server_jvm_options(size, {}),
                work_dir=_SANDBOX / "notebook-spark",
            )
        )
    return _NOTEBOOK_SERVER[0].master_url


def pytest_runtest_setup(item: pytest.Item) -> None:
    """With ``--notebooks-spark=shared``, point a notebook's kernel at the shared server (only while it runs: the
    other tests of this process keep their own classic session)."""
    if _is_notebook(item) and item.config.getoption("notebooks_spark") == SHARED:
        os.environ[SPARK_REMOTE_ENV] = _notebook_server_url()


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Take the shared server's URL away again after a notebook."""
    if _is_notebook(item):
        os.environ.pop(SPARK_REMOTE_ENV, None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember a failed notebook, so the tests that read its outputs say so instead of failing obscurely."""
    if report.failed and report.nodeid.endswith(".ipynb"):
        _FAILED_NOTEBOOKS.append(report.nodeid)


def pytest_unconfigure() -> None:
    """Stop the notebooks' shared server, if any; remove the sandbox unless asked to keep it
    (SPARKIFY_KEEP_TEST_OUTPUTS=1)."""
    for server in _NOTEBOOK_SERVER:
        server.stop()
    if not os.environ.get("SPARKIFY_KEEP_TEST_OUTPUTS"):
        shutil.rmtree(_SANDBOX, ignore_errors=True)


#: Spark settings of the unit tests' shared session only: their work is many small queries on a few rows,
#: where compiling each query's generated Java code costs more than it saves, so expressions are interpreted
#: (measured: test_load and test_features in one process 92-96 s -> 73 s; the unit tests on two workers
#: 132 s -> 114 s). Spark computes the same results either way; the notebooks, the runner and the cluster tests
#: keep Spark's defaults, so the code users run is still what they test end to end. (On the 128 MB default run
#: the same settings were slower: 72-74 s against 61-67 s.)
UNIT_SPARK_CONF = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


@pytest.fixture(scope="session")
def spark():
    """A small local SparkSession shared by all tests. Its one long-lived JVM keeps the default compiler, which
    pays off over the whole suite (measured: 6 % faster than with TEST_JVM_OPTIONS)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAVA_TOOL_OPTIONS", os.environ["JAVA_TOOL_OPTIONS"].replace(TEST_JVM_OPTIONS, "").strip())
        session = get_spark(
            "local[2]",
            driver_memory="2g",
            app_name="sparkify-tests",
            shuffle_partitions=4,
            spark_conf={"spark.ui.enabled": "false", **UNIT_SPARK_CONF},
        )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def one_point_grids():
    """For one test module: the same single grid point per model in both backends (``ONE_POINT_GRIDS`` of
    tests/test_models.py), so tuning still runs but on one candidate, and the backends differ only by library."""
    from test_models import ONE_POINT_GRIDS

    from sparkify_utils.modeling import sklearn_backend, spark_backend

    with pytest.MonkeyPatch.context() as patch:
        for module in (spark_backend, sklearn_backend):
            patch.setattr(module, "PARAM_GRIDS", ONE_POINT_GRIDS)
        yield


@pytest.fixture(scope="session")
def ci_run() -> Path:
    """One real run of the whole notebook sequence on params/ci.yaml (tiny data), shared by tests."""
    from sparkify_utils.runtime.runner import run

    return run(project.PARAMS_DIR / "ci.yaml", overrides=["spark_master=local[2]"])


@pytest.fixture(scope="session")
def interactive_run(request: pytest.FixtureRequest) -> Path:
    """``outputs/interactive`` as nbmake's notebooks left it: each ran alone, with its stored defaults and
    its own classic Spark driver, as in JupyterLab. Skipped when the notebooks are not part of the session or
    ran on a shared server."""
    if not request.config.stash.get(_NOTEBOOKS_COLLECTED, False):
        pytest.skip("needs the notebooks run by nbmake in the same session (pytest tests notebooks)")
    if request.config.getoption("notebooks_spark") != OWN:
        pytest.skip(
            f"compares the notebooks' own classic drivers with the runner's run: not with --notebooks-spark={SHARED}"
        )
    assert not _FAILED_NOTEBOOKS, f"notebooks failed, so their outputs cannot be compared: {_FAILED_NOTEBOOKS}"
    return project.interactive_run_dir()
