"""The real papermill sequence on params/ci.yaml, and the command line around it.

``ci_run`` (tests/conftest.py) is the session's first full run, through the runner's shared Spark
Connect server; later runs here reuse its load and features, run with a Spark driver per notebook to
compare with it, or are interrupted with SIGINT as a terminal's Ctrl-C would.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_cluster import assert_same_results

from sparkify_utils import artifacts, paths
from sparkify_utils.runtime import runner
from sparkify_utils.runtime.cli import main
from sparkify_utils.runtime.runner import RunError, run
from sparkify_utils.synth.generate import generate_log

pytestmark = pytest.mark.slow

CI = paths.PARAMS_DIR / "ci.yaml"
#: How long an interrupted run may take to stop its kernel and Spark and exit.
STOP_TIMEOUT = 120
#: A generated log whose default 21-day horizon holds enough churners (14) for params/ci.yaml's 3-fold CV
#: (the 100-user CI log has about 6), and whose 63 days leave room for the backtest's three cutoffs, each
#: trained one horizon earlier.
HORIZON_USERS, HORIZON_SEED, HORIZON_DAYS = 240, 3, 21


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
    assert manifest["spark"]["java_options"] == runner.QUICK_JVM_OPTIONS
    assert not process_alive(manifest["spark"]["pid"])
    # Other tests may have completed runs since; latest always points at a successful one.
    latest = manifest_of(paths.latest_link())
    assert latest["status"] == "ok"


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
    assert paths.latest_link().resolve() == before


def test_changed_model_parameter_reuses_load_and_features(ci_run, capsys):
    """``--only`` the models with a new CV setting: the load and features come from ci_run, linked."""
    assert main(["run", "--params", str(CI), "--only", artifacts.MODELS, "-p", "cv_folds=4"]) == 0
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


def test_notebooks_alone_match_the_runs_shared_spark_server(ci_run, interactive_run):
    """nbmake ran each notebook alone with its stored defaults and its own classic Spark driver, as in
    JupyterLab; the runner ran them as clients of one Spark Connect server. Same log: same load and features."""
    assert_same_results(interactive_run, ci_run, steps=(artifacts.EDA, artifacts.FEATURES))


def horizon_churners(log: Path, horizon_days: int, users: set[str]) -> set[str]:
    """Users of ``users`` whose first cancellation falls in the default horizon, computed from the raw log."""
    events = pd.read_json(log, lines=True, dtype={"userId": str})
    events = events[events["userId"] != ""]
    day = 86_400_000
    log_end = (int(events["ts"].max()) // day + 1) * day  # the midnight after the last event
    cutoff = log_end - horizon_days * day
    cancelled = events[events["page"] == "Cancellation Confirmation"].groupby("userId")["ts"].min()
    return set(cancelled[(cancelled >= cutoff) & (cancelled < log_end)].index) & users


def test_horizon_labels_through_the_models_with_datasets_outside_the_run(tmp_path):
    """Horizon mode end to end on a log with enough horizon churners for the CV, and spark_dir elsewhere."""
    log = paths.data_dir() / "sparkify_horizon.json"
    generate_log(log, users=HORIZON_USERS, seed=HORIZON_SEED, force=True)
    spark_dir = tmp_path / "spark"
    run_dir = run(
        CI,
        overrides=[
            f"input_path={log.name}",
            "label_mode=horizon",
            f"horizon_days={HORIZON_DAYS}",
            f"spark_dir={spark_dir}",
        ],
        echo=lambda _: None,
    )
    manifest = manifest_of(run_dir)
    assert manifest["status"] == "ok" and manifest["spark_dir"] == str(spark_dir / run_dir.name)
    # Datasets live under spark_dir only; the driver's files in the run directory.
    for artifact in artifacts.expected():
        home, elsewhere = (
            (spark_dir / run_dir.name, run_dir) if artifact.store == "spark" else (run_dir, spark_dir / run_dir.name)
        )
        assert (home / artifact.name).exists() and not (elsewhere / artifact.name).exists(), artifact.name
    features = pd.read_parquet(spark_dir / run_dir.name / artifacts.FEATURE_TABLE.name)
    churners = set(features.loc[features["churn"] == 1, "userId"])
    assert churners == horizon_churners(log, HORIZON_DAYS, set(features["userId"]))
    assert len(churners) >= 10, "too few horizon churners for a 3-fold comparison: use a bigger log"
    summary = json.loads((run_dir / artifacts.FEATURES_SUMMARY.name).read_text())
    assert summary["label_mode"] == "horizon" and summary["churners"] == len(churners)
    metrics = json.loads((run_dir / artifacts.MODEL_METRICS.name).read_text())
    held_out = pd.read_csv(run_dir / artifacts.PREDICTIONS.name, dtype={"userId": str})
    assert set(held_out["userId"]) <= set(features["userId"])
    assert metrics["split"]["train_churners"] + metrics["split"]["test_churners"] == len(churners)
    assert metrics["chosen_model"] in metrics["models"]
    # The backtest judges the same horizon label, out of time: three cutoffs, each with its own churners.
    backtest = json.loads((run_dir / artifacts.BACKTEST.name).read_text())
    assert len(backtest["cutoffs"]) == 3 and backtest["overall"]["churners"] > 0


def processes_marked(mark: str) -> list[str]:
    """Live processes (zombies aside) whose environment holds ``SPARKIFY_TEST_MARK=mark``: the run's descendants."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if f"SPARKIFY_TEST_MARK={mark}".encode() not in (proc / "environ").read_bytes():
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name} {command[:160]}")
        except (OSError, IndexError):
            continue  # not a process, or it ended while being read
    return found


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.5)
    return result


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the run's processes through /proc")
@pytest.mark.parametrize("spark", ["--shared-spark", "--no-shared-spark"])
def test_ctrl_c_during_the_first_notebook(spark):
    latest = paths.latest_link()
    before = latest.resolve() if latest.exists() else None
    mark = secrets.token_hex(8)
    # A new session, like a terminal's job: SIGINT to its group is what Ctrl-C sends.
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparkify_utils", "run", "--params", str(CI), "--force", spark],
        env={**os.environ, "SPARKIFY_TEST_MARK": mark},
        cwd=paths.PROJECT_ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        kernel = wait_for(
            lambda: [p for p in processes_marked(mark) if "ipykernel_launcher" in p], 300, "the first notebook's kernel"
        )
        time.sleep(3)  # into the notebook's first cells
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=STOP_TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, f"{out}\n{err}"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    run_dir = Path(re.search(r"^Run \S+ -> (\S+)$", out, re.M).group(1))
    assert err.strip().splitlines()[-1] == (
        f"sparkify run: interrupted during 01_eda; run {run_dir.name} is "
        "recorded as interrupted, outputs/latest is unchanged"
    )
    manifest = manifest_of(run_dir)
    assert manifest["status"] == "interrupted"
    assert manifest["notebooks"]["01_eda"]["status"] == "interrupted"
    assert manifest["notebooks"]["02_features"]["status"] == "pending"
    assert (latest.resolve() if latest.exists() else None) == before
    assert len(kernel) == 1
    leftovers = processes_marked(mark)
    assert not leftovers, "kernel or Spark processes survived the interrupt:\n" + "\n".join(leftovers)


def test_cli_rejects_unknown_parameter(capsys):
    assert main(["run", "-p", "no_such_key=1"]) == 2
    err = capsys.readouterr().err
    assert "no_such_key" in err and "Known parameters" in err
