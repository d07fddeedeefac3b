"""The archive of Spark's JVM classes: where it lives, how ``make setup`` builds it, the options that use it.

Every Spark driver JVM (a notebook's, the run's Spark Connect server, a test's) loads, parses and verifies
thousands of classes from Spark's jars before its first job. Java's application class-data sharing (AppCDS)
maps them from an archive written once instead: on a 2-core machine a local driver started in 2.2 s instead
of 4.3 s, and its first load of a small log took 7.1 s instead of 10.0 s (see the README's speed section).

``make setup`` builds the archive into the virtual environment, next to the jars it was built from, by
running a small job in a driver that writes it at exit. A JVM whose Java or class path differs from the
archive's (Spark's launcher, a cluster worker, a driver after the jars changed) checks that and runs
without it; results never depend on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: The archive, in the environment whose pyspark jars it was built from.
ARCHIVE = Path(sys.prefix) / "share" / "sparkify" / "spark-classes.jsa"
#: The JVM prints why it cannot use an archive to stdout, which Spark's launcher script parses as a command.
_QUIET = "-Xlog:cds=off,cds+dynamic=off"
#: This module's name even when it runs as ``python -m`` (then ``__name__`` is ``__main__``).
_MODULE = "sparkify_utils.runtime.class_archive"


def archive_options(archive: Path = ARCHIVE) -> str:
    """JVM options that map Spark's classes from ``archive``; empty when there is none."""
    return f"-XX:SharedArchiveFile={archive} {_QUIET}" if archive.is_file() else ""


def build_archive(archive: Path = ARCHIVE, java_options: str = "") -> Path:
    """Write ``archive`` from a driver (with ``java_options``) that runs a small job; return it.

    Written under a temporary name and then renamed, so a JVM starting meanwhile maps the old archive or the new.
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f".{archive.name}.{os.getpid()}")
    with tempfile.TemporaryDirectory(prefix="sparkify-archive-") as work:
        options = f"{java_options} -XX:ArchiveClassesAtExit={partial} {_QUIET}".strip()
        env = {**os.environ, "SPARKIFY_ARCHIVE_WORK": work}
        # Its own process: the JVM writes the archive when it exits, so it must be a JVM that exits here.
        done = subprocess.run(
            [sys.executable, "-c", f"from {_MODULE} import _workload; _workload({options!r})"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"Could not build the Spark class archive {archive}:\n{done.stderr[-3000:]}")
    os.replace(partial, archive)
    return archive


def _workload(java_options: str) -> None:
    """A driver's start and one small JSON-to-Parquet job: most of the classes any run's driver loads.

    (A whole ingest adds few classes but makes the archive take three times as long to write.)
    """
    from sparkify_utils.runtime.session import LOG4J_OPTION, get_spark

    work = Path(os.environ["SPARKIFY_ARCHIVE_WORK"])
    (work / "log.json").write_text('{"userId": "1", "page": "NextSong", "ts": 1538352000000}\n')
    driver = f"{LOG4J_OPTION} {java_options}"
    spark = get_spark("local[1]", app_name="sparkify-archive", spark_conf={"spark.driver.extraJavaOptions": driver})
    counts = spark.read.json(str(work / "log.json")).groupBy("page").count()
    counts.write.parquet(str(work / "counts.parquet"))
    spark.read.parquet(str(work / "counts.parquet")).toPandas()
    spark.stop()


def main() -> None:
    """``python -m sparkify_utils.runtime.class_archive``: build the archive (run by ``make setup``).

    Without Java, or if the build fails, it says so and leaves no archive: Spark then starts as usual, only slower.
    """
    from sparkify_utils.runtime.runner import QUICK_JVM_OPTIONS
    from sparkify_utils.runtime.session import SparkSetupError, java_major_version

    try:
        java_major_version()
        print(f"Spark class archive: {build_archive(java_options=QUICK_JVM_OPTIONS)}")
    except (SparkSetupError, RuntimeError) as exc:
        print(f"No Spark class archive (Spark will start without it): {exc}", file=sys.stderr)


if __name__ == "__main__":
    main()
