"""The notebook sequence on a real Spark standalone cluster (master + 2 one-core workers, separate JVMs).

Local mode runs driver and executors in one JVM, so it hides driver-local assumptions: Python
objects closed over in tasks, large collect()s, executors writing where only the driver looks.
Here the same ``params/ci.yaml`` run goes through the cluster and must give the local run's
results: same users and labels exactly, same features to 1e-9 relative, same model metrics to
``METRIC_TOL`` (see below). All processes sit on this machine's disk, so a dataset written by an
executor to a local path is still visible to the driver; ``spark_dir`` on object storage covers
that case on a real cluster.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sparkify_utils import artifacts, paths
from sparkify_utils.runtime.local_servers import (
    LocalCluster,
    LocalServers,
    cluster_env,
    start_connect_server,
    start_local_cluster,
)
from sparkify_utils.runtime.params import notebook_parameters
from sparkify_utils.runtime.runner import RunError, run

pytestmark = pytest.mark.slow

WORKERS = 2
#: Features are sums and means of doubles: the order of the additions follows the partitioning.
FEATURE_RTOL = 1e-9
#: Model metrics must agree to this absolute tolerance. Splits are drawn on the driver from the users
#: sorted by id, every model is seeded and fit on one partition in a fixed row order, so the models
#: should be identical; the tolerance only absorbs last-bit differences in evaluation sums. Any real
#: divergence (another split, a model that samples rows by their position in a partition, gradients
#: summed in task-completion order) moves a metric by at least one user's share of a fold (> 1e-2 here).
METRIC_TOL = 1e-6
#: metrics.json keys whose values differ between any two runs (wall times).
VOLATILE = ("timings", "fit_seconds")

SMOKE_APP = "sparkify-cluster-smoke"
SMOKE_JOB = """
import json, sys, time
from sparkify_utils.runtime.session import get_spark
spark = get_spark(sys.argv[1], driver_memory="1g", app_name=sys.argv[2])
sc = spark.sparkContext
deadline = time.monotonic() + 60
while sc._jsc.sc().getExecutorMemoryStatus().size() < 3 and time.monotonic() < deadline:
    time.sleep(0.5)  # the session returns before the executors have registered
pythons = sc.parallelize(range(8), 8).map(lambda _: sys.executable).distinct().collect()
blocks = sc._jsc.sc().getExecutorMemoryStatus().size()  # executors + the driver
print(json.dumps({"pythons": pythons, "executors": blocks - 1, "total": spark.range(10**6).count()}))
spark.stop()
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> LocalCluster:
    """A master and two 1-core, 2 GB workers on 127.0.0.1, stopped (every JVM) however the tests end."""
    with stopped_cleanly(start_local_cluster(workers=WORKERS, cores=1, memory="2g",
                                             work_dir=tmp_path_factory.mktemp("spark-cluster"))) as cluster:
        yield cluster


@contextlib.contextmanager
def stopped_cleanly(servers: LocalServers) -> Iterator[LocalServers]:
    """Yield ``servers``, then stop them and fail if any of their processes survived."""
    try:
        yield servers
    finally:
        servers.stop()
        leftovers = servers.leftover_processes()
        assert not leftovers, f"processes of {servers.master_url} survived stop():\n" + "\n".join(leftovers)


def run_ci_on(master_url: str, failure_context: Callable[[], str]) -> Path:
    """Run the params/ci.yaml sequence with ``spark_master=master_url``; fail with the servers' logs."""
    try:
        run_dir = run(paths.PARAMS_DIR / "ci.yaml", overrides=[f"spark_master={master_url}"], echo=lambda _: None)
    except RunError as exc:
        pytest.fail(f"{exc}\n{failure_context()}")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["parameters"]["spark_master"] == master_url
    assert all(nb["status"] == "ok" for nb in manifest["notebooks"].values())
    return run_dir


def _failure_context(cluster: LocalCluster) -> str:
    executor_errors = "\n".join(
        f"--- {log} ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        for log in cluster.executor_logs()
    )
    return f"{cluster.log_tail()}\n{executor_errors}"


def test_cluster_runs_tasks_on_two_executors_with_this_python(cluster):
    out = subprocess.run([sys.executable, "-c", SMOKE_JOB, cluster.master_url, SMOKE_APP], env=cluster_env(),
                         capture_output=True, text=True, timeout=300, cwd=paths.PROJECT_ROOT)
    assert out.returncode == 0, f"{out.stderr[-3000:]}\n{_failure_context(cluster)}"
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["executors"] == WORKERS
    assert result["pythons"] == [sys.executable], "executors must run the driver's Python (PYSPARK_PYTHON)"
    assert result["total"] == 10**6


def _table(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(run_dir / name).sort_values("userId", ignore_index=True)


def _json(run_dir: Path, name: str) -> Any:
    """A JSON artifact with the run's own directory replaced, so two runs' paths compare equal."""
    return json.loads((run_dir / name).read_text().replace(str(run_dir), "<run_dir>"))


def _compare(local: Any, remote: Any, where: str = "metrics") -> list[str]:
    """Differences between two JSON values: numbers to METRIC_TOL, everything else exactly."""
    if isinstance(local, dict) and isinstance(remote, dict):
        if set(local) != set(remote):
            return [f"{where}: keys {sorted(set(local) ^ set(remote))} in only one run"]
        return [d for key in local if key not in VOLATILE for d in _compare(local[key], remote[key], f"{where}.{key}")]
    if isinstance(local, list) and isinstance(remote, list):
        if len(local) != len(remote):
            return [f"{where}: {len(local)} items locally, {len(remote)} remotely"]
        return [d for i, (a, b) in enumerate(zip(local, remote, strict=True)) for d in _compare(a, b, f"{where}[{i}]")]
    numbers = (int, float)
    if isinstance(local, numbers) and isinstance(remote, numbers) and not isinstance(local, bool):
        same = (math.isnan(local) and math.isnan(remote)) or math.isclose(local, remote, rel_tol=0, abs_tol=METRIC_TOL)
        return [] if same else [f"{where}: {local} locally, {remote} remotely"]
    return [] if local == remote else [f"{where}: {local!r} locally, {remote!r} remotely"]


def test_notebooks_on_cluster_match_local_mode(ci_run, cluster, monkeypatch):
    # The kernels papermill starts inherit this; the driver tells executors which Python to run.
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    run_dir = run_ci_on(cluster.master_url, lambda: _failure_context(cluster))
    # Every notebook that takes a spark_master is one application on the cluster.
    spark_notebooks = [nb for nb in artifacts.STEPS
                       if "spark_master" in notebook_parameters(paths.NOTEBOOKS_DIR / f"{nb}.ipynb")]
    state = cluster.state()
    apps = [app["name"] for app in state["activeapps"] + state["completedapps"] if app["name"] != SMOKE_APP]
    assert len(apps) == len(spark_notebooks), f"applications on the cluster: {apps}; Spark notebooks: {spark_notebooks}"
    for worker in range(WORKERS):
        assert list((cluster.work_dir / f"worker-{worker}").glob("app-*")), f"worker {worker} ran no executor"

    assert_same_results(ci_run, run_dir)


def assert_same_results(local_run: Path, remote_run: Path) -> None:
    """Same data quality, users and labels; features to FEATURE_RTOL; metrics to METRIC_TOL."""
    assert _json(remote_run, "data_quality.json") == _json(local_run, "data_quality.json")

    pd.testing.assert_frame_equal(_table(remote_run, "users.parquet"), _table(local_run, "users.parquet"))

    local_features, remote_features = _table(local_run, "features.parquet"), _table(remote_run, "features.parquet")
    assert list(remote_features.columns) == list(local_features.columns)
    assert remote_features["userId"].tolist() == local_features["userId"].tolist()
    assert remote_features["churn"].tolist() == local_features["churn"].tolist()
    pd.testing.assert_frame_equal(remote_features, local_features, check_exact=False, rtol=FEATURE_RTOL, atol=1e-12)

    differences = _compare(_json(local_run, "metrics.json"), _json(remote_run, "metrics.json"))
    assert not differences, "model metrics differ between the local and the remote run:\n" + "\n".join(differences)


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory) -> LocalServers:
    """A Spark Connect server (driver on local[2]) on 127.0.0.1, stopped however the tests end."""
    with stopped_cleanly(start_connect_server(master="local[2]", driver_memory="2g",
                                              work_dir=tmp_path_factory.mktemp("spark-connect"))) as server:
        yield server


def test_notebooks_over_spark_connect_match_local_mode(ci_run, connect_server):
    # The kernels are gRPC clients: sparkContext, py4j and per-thread sessions all break here first.
    assert_same_results(ci_run, run_ci_on(connect_server.master_url, connect_server.log_tail))
