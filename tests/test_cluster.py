"""The notebook sequence on a real Spark standalone cluster (master + 2 one-core workers, separate JVMs).

Local mode runs driver and executors in one JVM, so it hides driver-local assumptions: Python
objects closed over in tasks, large collect()s, executors writing where only the driver looks.
Here the Spark steps of the ``params/ci.yaml`` run (load and features) go through a user's Spark
Connect server whose driver is an application on the cluster, the Spark ML trees are fitted there
over gRPC, and a classic application ingests a log with duplicates spread over two files. Each must
give local mode's results (the same steps in the suite's local session): same rows, users and labels
exactly, same features to 1e-9 relative, the same copies dropped. All processes sit on this machine's
disk, so a dataset written by an executor to a local path is still visible to the driver;
``spark_dir`` on object storage covers that case on a real cluster.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sparkify_utils import artifacts, paths
from sparkify_utils.data.ingest import ingest_events
from sparkify_utils.data.label import write_users
from sparkify_utils.features.build import build_tables, write_outputs
from sparkify_utils.paths import run_paths
from sparkify_utils.runtime.local_servers import (
    LocalCluster,
    LocalServers,
    cluster_env,
    start_connect_server,
    start_local_cluster,
)
from sparkify_utils.runtime.params import load_params_file, notebook_parameters
from sparkify_utils.runtime.runner import RunError, ensure_input, run
from sparkify_utils.runtime.session import SPARK_REMOTE_ENV

pytestmark = pytest.mark.slow

WORKERS = 2
#: Features are sums and means of doubles: the order of the additions follows the partitioning.
FEATURE_RTOL = 1e-9
#: The steps run on the cluster: the Spark-heavy ones. The model comparison of a small per-user table
#: runs on the driver (scikit-learn), so on a cluster it would only read the features.
ON_CLUSTER = (artifacts.EDA, artifacts.FEATURES)

SMOKE_APP = "sparkify-cluster-smoke"
SMOKE_JOB = """
import json, sys, time
from sparkify_utils.runtime.session import get_spark
spark = get_spark(sys.argv[1], driver_memory="1g", app_name=sys.argv[2], shuffle_partitions=4)
sc = spark.sparkContext
deadline = time.monotonic() + 60
while sc._jsc.sc().getExecutorMemoryStatus().size() < 3 and time.monotonic() < deadline:
    time.sleep(0.5)  # the session returns before the executors have registered
pythons = sc.parallelize(range(8), 8).map(lambda _: sys.executable).distinct().collect()
blocks = sc._jsc.sc().getExecutorMemoryStatus().size()  # executors + the driver
total = spark.range(10**6).count()
from sparkify_utils.data.ingest import ingest_events
from sparkify_utils.paths import run_paths
quality = ingest_events(spark, sys.argv[3], run_paths(sys.argv[4])).quality
print(json.dumps({"pythons": pythons, "executors": blocks - 1, "total": total, "quality": quality}))
spark.stop()
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> LocalCluster:
    """A master and two 1-core, 2 GB workers on 127.0.0.1, stopped (every JVM) however the tests end."""
    with stopped_cleanly(
        start_local_cluster(workers=WORKERS, cores=1, memory="2g", work_dir=tmp_path_factory.mktemp("spark-cluster"))
    ) as cluster:
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


def run_ci_on(master_url: str, failure_context: Callable[[], str], steps: tuple[str, ...]) -> Path:
    """Run ``steps`` of params/ci.yaml with ``spark_master=master_url``; fail with the servers' logs."""
    try:
        run_dir = run(
            paths.PARAMS_DIR / "ci.yaml",
            overrides=[f"spark_master={master_url}"],
            only=steps,
            force=True,
            echo=lambda _: None,
        )
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


#: Lines of the CI log in the duplicates test's log: a fifth of it, about twenty users, in two files (one
#: task each); the ingest on the cluster and again locally was the slowest part of the module's setup.
DUPLICATED_LOG_LINES = 20_000


def duplicated_log(folder: Path) -> Path:
    """The CI log's first ``DUPLICATED_LOG_LINES`` lines in one file, and in a second file copies of every 25th
    line and, for every 40th, the same event keys with another song: duplicates that the executors reading the
    two files never see together."""
    with paths.data_dir().joinpath("sparkify_ci.json").open() as log:
        lines = [line.rstrip("\n") for line in itertools.islice(log, DUPLICATED_LOG_LINES)]
    folder.mkdir()
    (folder / "part-0.json").write_text("\n".join(lines) + "\n")
    events = [json.loads(line) for line in lines]
    copies = [*lines[::25], *(json.dumps(e | {"song": "Another Song"}) for e in events[::40] if e["userId"])]
    (folder / "part-1.json").write_text("\n".join(copies) + "\n")
    return folder


@pytest.fixture(scope="module")
def local_run(spark, tmp_path_factory) -> Path:
    """What the Spark steps compute in local mode with params/ci.yaml's values (01's load and users, 02's feature
    table), by the package calls the notebooks make, in the suite's local session. The notebooks themselves run in
    local mode in the session's ``ci_run`` and in nbmake; a third local run of them here would only repeat that."""
    defaults = [notebook_parameters(paths.notebook_path(step)) for step in ON_CLUSTER]
    params = {**defaults[0], **defaults[1], **load_params_file(paths.PARAMS_DIR / "ci.yaml")}
    log = paths.resolve_input_path(params["input_path"])
    ensure_input(log, echo=lambda _: None)
    run_dir = tmp_path_factory.mktemp("local-run")
    local = run_paths(str(run_dir))
    loaded = ingest_events(
        spark,
        log,
        local,
        params["bad_row_policy"],
        params["valid_from"],
        params["valid_until"],
    )
    users = write_users(loaded.events, local)
    window = [params[name] for name in ("label_mode", "cutoff_date", "horizon_days", "lookback_days")]
    write_outputs(local, build_tables(loaded.events, users, *window), params["label_mode"])
    return run_dir


@pytest.fixture(scope="module")
def smoke(local_run, cluster, tmp_path_factory) -> dict[str, Any]:
    """One small application on the cluster: where its tasks run, and the ingest of a log with duplicates (made
    from the CI log that ``local_run`` generated)."""
    log = duplicated_log(tmp_path_factory.mktemp("duplicates") / "log")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            SMOKE_JOB,
            cluster.master_url,
            SMOKE_APP,
            str(log),
            str(tmp_path_factory.mktemp("cluster-ingest")),
        ],
        env=cluster_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=paths.PROJECT_ROOT,
    )
    assert out.returncode == 0, f"{out.stderr[-3000:]}\n{_failure_context(cluster)}"
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "log": log}


def test_cluster_runs_tasks_on_two_executors_with_this_python(smoke):
    assert smoke["executors"] == WORKERS
    assert smoke["pythons"] == [sys.executable], "executors must run the driver's Python (PYSPARK_PYTHON)"
    assert smoke["total"] == 10**6


def test_duplicates_are_found_on_the_cluster_as_in_local_mode(smoke, spark, tmp_path):
    local = ingest_events(spark, str(smoke["log"]), run_paths(str(tmp_path))).quality
    remote = smoke["quality"]
    copies = smoke["log"].joinpath("part-1.json").read_text().count("\n")
    assert remote["rows_read"] == local["rows_read"] and remote["rows_quarantined"]["duplicate"] == copies
    volatile = ("events_path", "quarantine_path")
    assert {k: v for k, v in remote.items() if k not in volatile} == {
        k: v for k, v in local.items() if k not in volatile
    }
    kept = [
        pd.read_parquet(q["events_path"]).sort_values(["userId", "ts", "page", "song"], ignore_index=True)
        for q in (local, remote)
    ]
    pd.testing.assert_frame_equal(kept[1], kept[0])


def _table(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(run_dir / name).sort_values("userId", ignore_index=True)


def _json(run_dir: Path, name: str) -> Any:
    """A JSON artifact with the run's own directory replaced, so two runs' paths compare equal."""
    return json.loads((run_dir / name).read_text().replace(str(run_dir), "<run_dir>"))


@pytest.fixture(scope="module")
def connect_server(cluster, tmp_path_factory) -> LocalServers:
    """A user's Spark Connect server on 127.0.0.1 whose driver is one application on the cluster, with shuffle
    partitions sized for two one-core executors and tiny data, as a cluster's spark-defaults.conf would set them."""
    with stopped_cleanly(
        start_connect_server(
            master=cluster.master_url,
            driver_memory="2g",
            work_dir=tmp_path_factory.mktemp("spark-connect"),
            conf={"spark.sql.shuffle.partitions": 4 * WORKERS},
        )
    ) as server:
        yield server


def test_notebooks_over_connect_on_the_cluster_match_local_mode(local_run, cluster, connect_server):
    # The kernels are gRPC clients of the user's server (spark_master=sc://...), whose executors are the
    # cluster's: one application, however many notebooks attach to it.
    run_dir = run_ci_on(
        connect_server.master_url, lambda: connect_server.log_tail() + _failure_context(cluster), ON_CLUSTER
    )
    state = cluster.state()
    apps = [app["name"] for app in state["activeapps"] + state["completedapps"] if app["name"] != SMOKE_APP]
    assert apps == ["sparkify-connect-server"], f"applications on the cluster: {apps}"
    for worker in range(WORKERS):
        assert list((cluster.work_dir / f"worker-{worker}").glob("app-*")), f"worker {worker} ran no executor"

    assert_same_results(local_run, run_dir, ON_CLUSTER)


def assert_same_results(local_run: Path, remote_run: Path, steps: tuple[str, ...]) -> None:
    """What ``steps`` (01 and/or 02) computed is the same: data quality, users and labels exactly; features
    to FEATURE_RTOL."""
    if artifacts.EDA in steps:
        # Which file was read is the run's parameter, not a result: compare what was found in it.
        local_quality, remote_quality = (
            {k: v for k, v in _json(run, artifacts.DATA_QUALITY.name).items() if k not in ("input_path", "files")}
            for run in (local_run, remote_run)
        )
        assert remote_quality == local_quality
        pd.testing.assert_frame_equal(_table(remote_run, artifacts.USERS.name), _table(local_run, artifacts.USERS.name))

    if artifacts.FEATURES in steps:
        local_features = _table(local_run, artifacts.FEATURE_TABLE.name)
        remote_features = _table(remote_run, artifacts.FEATURE_TABLE.name)
        assert list(remote_features.columns) == list(local_features.columns)
        assert remote_features["userId"].tolist() == local_features["userId"].tolist()
        assert remote_features["churn"].tolist() == local_features["churn"].tolist()
        pd.testing.assert_frame_equal(remote_features, local_features, check_exact=False, rtol=FEATURE_RTOL, atol=1e-12)


def test_spark_tree_reasons_are_exact_over_spark_connect_on_the_cluster(connect_server):
    # With SPARKIFY_SPARK_REMOTE set, the suite's spark fixture is a client of the server: the Spark ML trees
    # of tests/test_spark_trees.py are fitted on the cluster's executors, rebuilt and checked against their own
    # output over gRPC.
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider", "-m", "slow"]
        + [str(Path(__file__).with_name("test_spark_trees.py"))],
        env={**os.environ, SPARK_REMOTE_ENV: connect_server.master_url},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout[-4000:] + connect_server.log_tail()
