"""The real papermill sequence on params/ci.yaml.

``ci_run`` (tests/conftest.py) is the session's first full run, through the runner's shared Spark
Connect server; later runs here reuse its load and features, or fail on purpose; nbmake's notebooks,
each with its own Spark driver, are compared with it. Runs that need no earlier run are in
tests/test_horizon_run.py and tests/test_interrupt.py (Ctrl-C, the command line).

The first test is ``make test-fast``'s one pass of the notebooks; the others, each a further run or a
comparison with nbmake's notebooks, are ``slow``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from test_cluster import assert_same_results

from sparkify_utils import artifacts, paths
from sparkify_utils.runtime import runner
from sparkify_utils.runtime.class_archive import archive_options
from sparkify_utils.runtime.cli import main
from sparkify_utils.runtime.runner import RunError, run

CI = paths.PARAMS_DIR / "ci.yaml"


def manifest_of(run_dir: Path) -> dict:
    return json.loads((run_dir / artifacts.MANIFEST.name).read_text())


def missing_artifacts(run_dir: Path, steps: tuple[str, ...] = artifacts.STEPS) -> list[str]:
    return [a.name for a in artifacts.expected(steps) if not (run_dir / a.name).exists()]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ci_run_produces_every_artifact(ci_run):
    missing = missing_artifacts(ci_run)
    assert not missing, f"missing artifacts in {ci_run}: {missing}"
    manifest = manifest_of(ci_run)
    assert manifest["status"] == "ok"
    assert list(manifest["notebooks"]) == list(artifacts.STEPS)
    for name in artifacts.STEPS:
        assert (ci_run / artifacts.EXECUTED.name / f"{name}.ipynb").is_file()
        assert manifest["notebooks"][name]["status"] == "ok"
    assert manifest["input"]["fingerprint"] and manifest["input"]["bytes"] > 0
    # The notebooks ran on one Spark Connect server, stopped with the run; the recorded master is the user's.
    assert manifest["spark"]["mode"] == "connect-server" and manifest["spark"]["master"] == "local[2]"
    assert manifest["parameters"]["spark_master"] == "local[2]"
    # A tiny input: the server's JVM was started for many short jobs, and the manifest says so.
    assert manifest["spark"]["java_options"] == f"{runner.QUICK_JVM_OPTIONS} {archive_options()}".strip()
    assert manifest["spark"]["shuffle_partitions"] == runner.QUICK_SHUFFLE_PARTITIONS_PER_CORE * 2
    # The server's log stays with the run.
    server_log = Path(manifest["spark"]["log"])
    assert server_log.parent == ci_run / artifacts.SPARK_LOGS.name and server_log.is_file()
    assert not process_alive(manifest["spark"]["pid"])
    # Other tests may have completed runs since; latest always points at a successful one.
    latest = manifest_of(paths.latest_link())
    assert latest["status"] == "ok"


@pytest.mark.slow
def test_failing_notebook_leaves_latest_untouched(ci_run):
    blank = paths.data_dir() / "blank.json"
    blank.write_text("")
    before = paths.latest_link().resolve()
    with pytest.raises(RunError) as info:
        run(CI, overrides=["input_path=blank.json"], echo=lambda _: None)
    message = str(info.value)
    assert "01_eda" in message and "executed copy:" in message
    executed = message.split("executed copy: ")[1].split()[0]
    assert json.loads(Path(executed).read_text())["cells"], "the executed copy is a readable notebook"
    assert "blank.json is empty (1 file(s), no lines)" in message
    server_log = message.split("Spark server log: ")[1].split()[0]
    assert Path(server_log).is_file() and Path(server_log).is_relative_to(Path(executed).parent.parent)
    assert paths.latest_link().resolve() == before


@pytest.mark.slow
def test_changed_model_parameter_reuses_load_and_features(ci_run, capsys):
    """``--only`` the models with new settings (4 CV folds, no backtest): the load and features come from
    ci_run, linked."""
    args = ["run", "--params", str(CI), "--only", artifacts.MODELS, "-p", "cv_folds=4", "-p", "backtest_cutoffs=0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    run_dir = Path(re.search(r"^Run \S+ -> (\S+)$", out, re.M).group(1))
    manifest = manifest_of(run_dir)
    source = paths.runs_dir() / manifest["reuse"]["from"]
    assert manifest["reuse"]["steps"] == [artifacts.EDA, artifacts.FEATURES]
    assert f"01_eda, 02_features reused from run {source.name}" in out
    assert manifest_of(source)["input"]["fingerprint"] == manifest["input"]["fingerprint"]
    assert manifest["status"] == "ok"
    statuses = {name: nb["status"] for name, nb in manifest["notebooks"].items()}
    assert statuses == {artifacts.EDA: "reused", artifacts.FEATURES: "reused", artifacts.MODELS: "ok"}
    assert not missing_artifacts(run_dir, artifacts.STEPS[:3]), "the dashboard needs a whole run directory"
    features = next((run_dir / artifacts.FEATURE_TABLE.name).glob("part-*.parquet"))
    linked = source / artifacts.FEATURE_TABLE.name / features.name
    assert features.stat().st_ino == linked.stat().st_ino, "linked, not copied"
    # The models ran with the new parameter on the reused features: 4 folds x 1 repeat per model.
    folds = json.loads((run_dir / artifacts.MODEL_METRICS.name).read_text())["folds"]
    assert {len(scores["f1"]) for scores in folds.values()} == {4}
    assert "backtest_cutoffs=0" in json.loads((run_dir / artifacts.BACKTEST.name).read_text())["skipped"]


@pytest.mark.slow
def test_notebooks_alone_match_the_runs_shared_spark_server(ci_run, interactive_run):
    """nbmake ran each notebook alone with its stored defaults and its own classic Spark driver, as in
    JupyterLab; the runner ran them as clients of one Spark Connect server. Same log: same load and features."""
    assert_same_results(interactive_run, ci_run, steps=(artifacts.EDA, artifacts.FEATURES))
