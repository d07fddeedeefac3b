"""Ctrl-C during a run (SIGINT to the run's process group, as a terminal sends it), and the command line's
refusal of an unknown parameter.

Apart from tests/test_sequence.py: it needs no earlier run, so it can run on the other pytest-xdist worker.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sequence import CI, manifest_of

from sparkify_utils import paths
from sparkify_utils.runtime.cli import main

pytestmark = pytest.mark.slow

#: How long an interrupted run may take to stop its kernel and Spark and exit.
STOP_TIMEOUT = 120


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
