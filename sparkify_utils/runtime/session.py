"""The one way every notebook, test and benchmark gets a SparkSession, and the watch over a standalone master.

A driver whose standalone master dies keeps waiting for it to come back: Spark has no setting that gives
up (executors keep running until their workers give up, then nothing can replace them and the job
waits until the cell times out, an hour later). So on ``spark://`` masters a watchdog thread fails the
application's jobs, naming the master, once it has been unreachable for ``MASTER_LOST_TIMEOUT_KEY``
seconds, and a master that does not answer at all is refused before any JVM starts.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from pyspark.sql import SparkSession

from sparkify_utils.runtime.class_archive import archive_options

MIN_JAVA = 17
#: Spark's logging: warnings and errors only (driver, executors, and the runner's Connect server).
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
#: The JVM option that points a driver or executor at it.
LOG4J_OPTION = f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}"
#: Set by the runner for the kernels it starts: the ``sc://`` URL of the run's own Spark Connect server,
#: used instead of starting a driver JVM when a notebook's ``spark_master`` is local.
SPARK_REMOTE_ENV = "SPARKIFY_SPARK_REMOTE"
#: ``spark_conf`` key: seconds a standalone master may stay unreachable before the run is failed.
MASTER_LOST_TIMEOUT_KEY = "spark.sparkify.masterLostTimeout"
#: Its default, Spark's own default network timeout: long enough for a master restarted by a supervisor.
MASTER_LOST_TIMEOUT = 120.0
#: Seconds between two checks of the master, and the connect timeout of each.
_PROBE_INTERVAL = 5.0
#: PySpark's switch for the DataFrame query context of its error messages (see ``session_conf``).
DEBUGGING_KEY = "spark.python.sql.dataFrameDebugging.enabled"


class SparkSetupError(RuntimeError):
    """Spark cannot start; the message says why and what to do."""


def java_major_version() -> int:
    """Major version of the Java that Spark will launch (``JAVA_HOME`` first, then ``PATH``)."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise SparkSetupError(
            "Java was not found: PySpark needs Java 17 or newer. Install it (Debian/Ubuntu: "
            "`apt-get install openjdk-17-jre-headless`; conda: `conda install openjdk=17`) "
            "or set JAVA_HOME to a JDK 17+ installation."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise SparkSetupError(f"Could not read the Java version from `{java} -version`: {out.stderr!r}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major


#: Shuffle partitions on a local master: enough that the full 12 GB log's shuffles fit in a 4 GB driver;
#: adaptive execution coalesces them again after a shuffle of small data.
LOCAL_SHUFFLE_PARTITIONS = 32


def session_conf(
    spark_master: str, shuffle_partitions: int = 0, spark_conf: dict | None = None, attached: bool = False
) -> dict[str, str]:
    """The Spark settings ``get_spark`` gives a session (``attached``: a local master's notebook on the run's
    Spark Connect server, whose shuffle partitions the run's input size chose when it started)."""
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.adaptive.enabled": "true",
        # Wide event rows otherwise trigger a "Truncated the string representation of a plan" warning.
        "spark.sql.debug.maxToStringFields": "200",
        # PySpark 4 otherwise records the Python call site of every column function, for error messages: in
        # classic mode 13 round trips to the JVM for one F.col instead of 3, and a second or more of a
        # notebook's building of its wide feature expressions (set it to "true" to see those call sites).
        DEBUGGING_KEY: "false",
    }
    if shuffle_partitions:
        conf["spark.sql.shuffle.partitions"] = str(shuffle_partitions)
    elif spark_master.startswith("local") and not attached:
        conf["spark.sql.shuffle.partitions"] = str(LOCAL_SHUFFLE_PARTITIONS)
    conf.update({k: str(v) for k, v in (spark_conf or {}).items()})
    return conf


def get_spark(
    spark_master: str = "local[*]",
    driver_memory: str = "2g",
    app_name: str = "sparkify-churn",
    shuffle_partitions: int = 0,
    spark_conf: dict | None = None,
) -> SparkSession:
    """Start (or reuse) the SparkSession for ``spark_master``: local, standalone, YARN or ``sc://``.

    ``shuffle_partitions=0`` picks ``LOCAL_SHUFFLE_PARTITIONS`` on a local master (the run's server's own when
    attached to it) and leaves Spark's default elsewhere; ``spark_conf`` adds any other setting (executor
    memory, S3 credentials, ...).
    A local master becomes a client of the run's Spark Connect server when the runner has started one
    (``SPARKIFY_SPARK_REMOTE``): the notebook's parameters stay as written, and alone it runs local Spark.
    """
    remote = os.environ.get(SPARK_REMOTE_ENV, "") if spark_master.startswith("local") else spark_master
    conf = session_conf(spark_master, shuffle_partitions, spark_conf, attached=remote.startswith("sc://"))

    if remote.startswith("sc://"):
        builder = SparkSession.builder.remote(remote).appName(app_name)
        for key, value in conf.items():
            builder = builder.config(key, value)
        return builder.getOrCreate()

    masters = standalone_masters(spark_master)
    lost_timeout = _seconds(conf.get(MASTER_LOST_TIMEOUT_KEY, MASTER_LOST_TIMEOUT), MASTER_LOST_TIMEOUT_KEY)
    if masters and not any(_answers(address) for address in masters):
        raise SparkSetupError(
            f"The Spark master {spark_master} does not answer (nothing accepts connections at "
            f"{', '.join(f'{h}:{p}' for h, p in masters)}): start the cluster, or fix spark_master."
        )
    if java_major_version() < MIN_JAVA:
        raise SparkSetupError(
            f"PySpark 4 needs Java {MIN_JAVA}+, but `java -version` reports Java "
            f"{java_major_version()}. Install OpenJDK 17 and point JAVA_HOME at it."
        )
    if spark_master.startswith(("local", "spark://127.0.0.1", "spark://localhost")):
        # Bind to loopback so a laptop's network interfaces neither leak nor break local runs, and let
        # executors on this machine run this environment's Python rather than whatever is on PATH.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(spark_master)
        .appName(app_name)
        .config("spark.driver.memory", driver_memory)
        .config("spark.driver.extraJavaOptions", f"{LOG4J_OPTION} {archive_options()}".strip())
        .config("spark.executor.extraJavaOptions", LOG4J_OPTION)
        .config("spark.ui.showConsoleProgress", "false")
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if masters:
        MasterWatchdog(spark, spark_master, masters, lost_timeout).start()
    return spark


def standalone_masters(spark_master: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` of each master of a ``spark://`` URL (several with standby masters); else empty."""
    if not spark_master.startswith("spark://"):
        return []
    addresses = []
    for address in spark_master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise SparkSetupError(f"spark_master {spark_master!r}: {address!r} is not host:port (e.g. spark://h:7077).")
        addresses.append((host, int(port)))
    return addresses


def _seconds(value: object, key: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if seconds <= 0:
        raise SparkSetupError(f"{key} must be a positive number of seconds, got {value!r}.")
    return seconds


def _answers(address: tuple[str, int]) -> bool:
    """True if something accepts TCP connections at ``address`` (a master's RPC port) right now."""
    try:
        with socket.create_connection(address, timeout=_PROBE_INTERVAL):
            return True
    except OSError:
        return False


class MasterWatchdog(threading.Thread):
    """Fails the jobs of a standalone application whose master stays unreachable for ``timeout`` seconds.

    Spark's driver only logs "waiting for master to reconnect": running executors go on until their workers
    give up on the master, and then nothing replaces them, so the job waits forever. The watchdog cancels
    the running jobs with a reason naming the master (the cell fails with it) and stops the SparkContext,
    so later jobs fail at once instead of waiting. It ends with the SparkContext.
    """

    def __init__(self, spark: SparkSession, url: str, masters: list[tuple[str, int]], timeout: float) -> None:
        super().__init__(name="sparkify-master-watchdog", daemon=True)
        self.spark, self.url, self.masters, self.timeout = spark, url, masters, timeout

    def _context_stopped(self) -> bool:
        try:
            return self.spark.sparkContext._jsc.sc().isStopped()
        except Exception:  # noqa: BLE001 - the gateway is gone with the driver: nothing left to watch
            return True

    def run(self) -> None:
        """Probe the masters every few seconds until the context stops or they stay unreachable too long."""
        unreachable_since = None
        while not self._context_stopped():
            if any(_answers(address) for address in self.masters):
                unreachable_since = None
            else:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since >= self.timeout:
                    self.fail()
                    return
            time.sleep(_PROBE_INTERVAL)

    def fail(self) -> None:
        """Cancel every running job with the reason, then stop the SparkContext."""
        reason = (
            f"Lost the Spark cluster: its master {self.url} has not answered for {self.timeout:.0f} s, so "
            f"executors that stop cannot be replaced and no new application can start. Restart the cluster "
            f"and run again ({MASTER_LOST_TIMEOUT_KEY} in spark_conf sets this wait)."
        )
        print(reason, file=sys.stderr, flush=True)
        context = self.spark.sparkContext
        for job in context.statusTracker().getActiveJobsIds():
            context._jsc.sc().cancelJob(job, reason)
        self.spark.stop()
