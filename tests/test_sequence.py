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

import pytest
from test_cluster import assert_same_results

from sparkify_utils import artifacts, paths
from sparkify_utils.runtime.cli import main
from sparkify_utils.runtime.runner import RunError, run

pytestmark = pytest.mark.slow

CI = paths.PARAMS_DIR / "ci.yaml"
#: How long an interrupted run may take to stop its kernel and Spark and exit.
STOP_TIMEOUT = 120


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


def test_changed_model_parameter_reuses_load_and_features(ci_run):
    lines: list[str] = []
    run_dir = run(CI, overrides=["cv_folds=4"], echo=lines.append)
    manifest = manifest_of(run_dir)
    source = paths.runs_dir() / manifest["reuse"]["from"]
    assert manifest["reuse"]["steps"] == ["01_eda", "02_features"]
    assert f"01_eda, 02_features reused from run {source.name}" in lines[1]
    assert "parameter cv_folds of 03_model_comparison is 4" in lines[1]
    assert manifest_of(source)["input"]["fingerprint"] == manifest["input"]["fingerprint"]
    statuses = {name: nb["status"] for name, nb in manifest["notebooks"].items()}
    assert statuses == {"01_eda": "reused", "02_features": "reused", "03_model_comparison": "ok", "04_dashboard": "ok"}
    assert not missing_artifacts(run_dir), "the dashboard needs a whole run directory"
    features = next((run_dir / artifacts.FEATURE_TABLE.name).glob("part-*.parquet"))
    linked = source / artifacts.FEATURE_TABLE.name / features.name
    assert features.stat().st_ino == linked.stat().st_ino, "linked, not copied"
    # The models ran with the new parameter on the reused features: 4 folds x 1 repeat per model.
    folds = json.loads((run_dir / artifacts.MODEL_METRICS.name).read_text())["folds"]
    assert {len(scores["f1"]) for scores in folds.values()} == {4}


def test_only_models_picks_up_the_features_of_a_compatible_run(ci_run, capsys):
    assert main(["run", "--params", str(CI), "--only", "03_model_comparison"]) == 0
    out = capsys.readouterr().out
    run_dir = Path(re.search(r"^Run \S+ -> (\S+)$", out, re.M).group(1))
    manifest = manifest_of(run_dir)
    assert "01_eda, 02_features reused from run" in out
    assert manifest["status"] == "ok"
    assert {name: nb["status"] for name, nb in manifest["notebooks"].items()} == {
        "01_eda": "reused", "02_features": "reused", "03_model_comparison": "ok"}
    assert not missing_artifacts(run_dir, artifacts.STEPS[:3])


def test_shared_spark_server_matches_a_driver_per_notebook(ci_run):
    local = run(CI, force=True, shared_spark=False, echo=lambda _: None)
    manifest = manifest_of(local)
    assert manifest["spark"] == {"mode": "per-notebook"}
    assert {nb["status"] for nb in manifest["notebooks"].values()} == {"ok"}
    assert_same_results(local, ci_run)


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
        env={**os.environ, "SPARKIFY_TEST_MARK": mark}, cwd=paths.PROJECT_ROOT, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        kernel = wait_for(lambda: [p for p in processes_marked(mark) if "ipykernel_launcher" in p], 300,
                          "the first notebook's kernel")
        time.sleep(3)  # into the notebook's first cells
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=STOP_TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, f"{out}\n{err}"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    run_dir = Path(re.search(r"^Run \S+ -> (\S+)$", out, re.M).group(1))
    assert err.strip().splitlines()[-1] == (f"sparkify run: interrupted during 01_eda; run {run_dir.name} is "
                                            "recorded as interrupted, outputs/latest is unchanged")
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
