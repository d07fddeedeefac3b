"""Cluster faults that must end a run quickly and cleanly, never hang it or leave JVMs behind.

A standalone master that dies mid-run leaves the driver waiting for it: the run would hang until the
one-hour cell timeout. ``get_spark``'s watchdog must fail the job, naming the master, soon after the
master stops answering; a master that does not answer at all is refused before a JVM starts. The
cluster helper must stop its JVMs on SIGTERM as on Ctrl-C (they run in their own sessions, so they
would outlive it). Executors killed mid-run are covered by ``test_cluster.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sparkify_utils import paths
from sparkify_utils.runtime.local_servers import cluster_env, free_port, start_local_cluster
from sparkify_utils.runtime.session import MASTER_LOST_TIMEOUT_KEY, SparkSetupError, get_spark

#: The watchdog's wait in these tests (the default is two minutes).
LOST_TIMEOUT = 5
#: How long the driver may take, after the watchdog's wait, to fail the job and exit (a loaded machine is slow).
EXIT_MARGIN = 90
#: The job that is running when the master dies: its tasks would sleep far longer than the test waits.
HANGING_JOB = """
import json, sys, time
from sparkify_utils.runtime.session import get_spark
spark = get_spark(sys.argv[1], driver_memory="1g", app_name="sparkify-lost-master", spark_conf=json.loads(sys.argv[2]))
sc = spark.sparkContext
deadline = time.monotonic() + 120
while sc._jsc.sc().getExecutorMemoryStatus().size() < 2 and time.monotonic() < deadline:
    time.sleep(0.5)
print("job starts", flush=True)
sc.parallelize(range(2), 2).map(lambda x: time.sleep(3600) or x).collect()
print("job finished", flush=True)
"""


def test_unreachable_master_is_refused_before_spark_starts():
    url = f"spark://127.0.0.1:{free_port()}"  # free: nothing listens there
    with pytest.raises(SparkSetupError, match="does not answer") as info:
        get_spark(url)
    assert url in str(info.value) and "start the cluster" in str(info.value)


@pytest.mark.slow
def test_lost_master_fails_the_running_job_and_names_it(tmp_path):
    with start_local_cluster(workers=1, cores=1, memory="1g", work_dir=tmp_path / "cluster") as cluster:
        conf = json.dumps({MASTER_LOST_TIMEOUT_KEY: LOST_TIMEOUT})
        driver = subprocess.Popen(
            [sys.executable, "-c", HANGING_JOB, cluster.master_url, conf],
            env=cluster_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=paths.PROJECT_ROOT,
        )
        try:
            output = _read_until(driver, "job starts", timeout=300)
            time.sleep(2)  # the tasks are sleeping on the executor now
            os.killpg(cluster.processes["master"].pid, signal.SIGKILL)
            killed = time.monotonic()
            try:
                rest, _ = driver.communicate(timeout=LOST_TIMEOUT + EXIT_MARGIN)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the driver still waits {LOST_TIMEOUT + EXIT_MARGIN} s after its master died")
            waited = time.monotonic() - killed
            output += rest
        finally:
            driver.kill()
            driver.wait()
    assert driver.returncode != 0 and "job finished" not in output, output[-3000:]
    # The job's own exception carries the reason, so the notebook cell (and the runner) show it.
    assert f"cancelled Lost the Spark cluster: its master {cluster.master_url}" in output, output[-3000:]
    assert waited >= LOST_TIMEOUT


def _read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    """Lines of ``process``'s output up to the one containing ``marker``; fail if it exits or times out first."""
    deadline, lines = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"exited with {process.wait()} before printing {marker!r}:\n" + "".join(lines[-40:]))
        lines.append(line)
        if marker in line:
            return "".join(lines)
    pytest.fail(f"no {marker!r} within {timeout} s:\n" + "".join(lines[-40:]))


def _live_in_groups(groups: set[int]) -> list[str]:
    """``ps`` lines of live (not zombie) processes in the given process groups."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True)
    rows = [line.split(maxsplit=3) for line in out.stdout.splitlines()]
    return [" ".join(row) for row in rows if int(row[1]) in groups and not row[2].startswith("Z")]


@pytest.mark.slow
def test_cluster_helper_stops_master_and_workers_on_sigterm():
    command = [
        sys.executable,
        "-m",
        "sparkify_utils.runtime.local_servers",
        "--workers",
        "1",
        "--memory",
        "512m",
        "--port",
        "0",
        "--webui-port",
        "0",
    ]
    helper = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=paths.PROJECT_ROOT
    )
    groups: set[int] = set()
    try:
        _read_until(helper, "stops it", timeout=300)
        # Each JVM is a child of the helper and leads its own process group (its executors would join it).
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(helper.pid)], capture_output=True, text=True)
        groups = {int(pid) for pid in children.stdout.split()}
        assert len(groups) == 2, f"expected a master and a worker JVM, found {children.stdout!r}"
        helper.send_signal(signal.SIGTERM)
        helper.wait(timeout=120)
        left = _live_in_groups(groups)
        assert not left, "the helper left these running after SIGTERM:\n" + "\n".join(left)
        assert helper.returncode == 0
    finally:
        helper.kill()
        helper.wait()
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
