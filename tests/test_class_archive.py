"""The archive of Spark's classes that ``make setup`` builds: a driver started by ``get_spark`` maps them from it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sparkify_utils.runtime.class_archive import ARCHIVE, archive_options


def test_no_archive_no_options(tmp_path):
    assert archive_options(tmp_path / "missing.jsa") == ""


@pytest.mark.slow  # starts a Spark driver of its own
@pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"no class archive at {ARCHIVE}: `make setup` builds it")
def test_a_local_driver_loads_sparks_classes_from_the_archive(tmp_path):
    # Each JVM (Spark's launcher, then the driver) logs where each class it loads came from.
    env = {**os.environ, "JAVA_TOOL_OPTIONS": f"-Xlog:class+load=info:file={tmp_path}/load-%p.log"}
    code = (
        "from sparkify_utils.runtime.session import get_spark\n"
        "spark = get_spark('local[1]', spark_conf={'spark.ui.enabled': 'false'})\n"
        "assert spark.range(3).count() == 3\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=300)
    logs = [path.read_text() for path in tmp_path.glob("load-*.log")]
    driver = next(log for log in logs if "org.apache.spark.SparkContext source:" in log)
    assert "org.apache.spark.SparkContext source: shared objects file (top)" in driver
    assert driver.count("source: shared objects file (top)") > 5000
