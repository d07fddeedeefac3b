"""The one way every notebook, test and benchmark gets a SparkSession."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from pyspark.sql import SparkSession

MIN_JAVA = 17
#: Spark's logging: warnings and errors only (driver, executors, and the runner's Connect server).
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
#: Set by the runner for the kernels it starts: the ``sc://`` URL of the run's own Spark Connect server,
#: used instead of starting a driver JVM when a notebook's ``spark_master`` is local.
SPARK_REMOTE_ENV = "SPARKIFY_SPARK_REMOTE"


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


def get_spark(
    spark_master: str = "local[*]",
    driver_memory: str = "2g",
    app_name: str = "sparkify-churn",
    shuffle_partitions: int = 0,
    spark_conf: dict | None = None,
) -> SparkSession:
    """Start (or reuse) the SparkSession for ``spark_master``: local, standalone, YARN or ``sc://``.

    ``shuffle_partitions=0`` picks 32 on a local master (small data, few cores) and leaves Spark's
    default elsewhere; ``spark_conf`` adds any other setting (executor memory, S3 credentials, ...).
    A local master becomes a client of the run's Spark Connect server when the runner has started one
    (``SPARKIFY_SPARK_REMOTE``): the notebook's parameters stay as written, and alone it runs local Spark.
    """
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.adaptive.enabled": "true",
        # Wide event rows otherwise trigger a "Truncated the string representation of a plan" warning.
        "spark.sql.debug.maxToStringFields": "200",
    }
    if spark_master.startswith("local"):
        # Enough partitions that the full 12 GB log's shuffles fit in a 4 GB driver; adaptive execution
        # coalesces them again on small data.
        conf["spark.sql.shuffle.partitions"] = str(shuffle_partitions or 32)
    elif shuffle_partitions:
        conf["spark.sql.shuffle.partitions"] = str(shuffle_partitions)
    conf.update({k: str(v) for k, v in (spark_conf or {}).items()})

    remote = os.environ.get(SPARK_REMOTE_ENV, "") if spark_master.startswith("local") else spark_master
    if remote.startswith("sc://"):
        builder = SparkSession.builder.remote(remote).appName(app_name)
        for key, value in conf.items():
            builder = builder.config(key, value)
        return builder.getOrCreate()

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
    log4j = f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}"
    builder = (
        SparkSession.builder.master(spark_master)
        .appName(app_name)
        .config("spark.driver.memory", driver_memory)
        .config("spark.driver.extraJavaOptions", log4j)
        .config("spark.executor.extraJavaOptions", log4j)
        .config("spark.ui.showConsoleProgress", "false")
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
