"""Serving the dashboard notebook as a web page with Voila, on 127.0.0.1 only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sparkify_utils import paths
from sparkify_utils.artifacts import DASHBOARD
from sparkify_utils.report.run import RUN_DIR_ENV, resolve_run_dir

DASHBOARD_NOTEBOOK = paths.notebook_path(DASHBOARD)


def voila_command(port: int, notebook: Path = DASHBOARD_NOTEBOOK) -> list[str]:
    """The Voila command line: loopback only, code hidden, no tracebacks sent to the page."""
    return [
        sys.executable,
        "-m",
        "voila",
        str(notebook),
        "--no-browser",
        "--Voila.ip=127.0.0.1",
        f"--Voila.port={port}",
        "--Voila.port_retries=0",
        "--strip_sources=True",
        "--VoilaConfiguration.show_tracebacks=False",
    ]


def dashboard_env(run_dir: str = "") -> dict[str, str]:
    """The environment for Voila: the run (if any) in ``SPARKIFY_RUN_DIR``, resolved to an absolute path."""
    env = dict(os.environ)
    if run_dir:
        # On the command line a relative path is relative to the shell's directory first.
        path = Path(run_dir).expanduser() if Path(run_dir).expanduser().is_dir() else resolve_run_dir(run_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"Run directory {path} does not exist. Fix: pass an existing run to --run-dir.")
        env[RUN_DIR_ENV] = str(path.resolve())
    else:
        # Opened on its own the notebook shows the interactive run; served, it shows the last batch run.
        env[RUN_DIR_ENV] = str(paths.latest_link())
    return env


def serve(run_dir: str = "", port: int = 8866) -> int:
    """Serve the dashboard with Voila on 127.0.0.1 until interrupted; return Voila's exit code."""
    env = dashboard_env(run_dir)
    shown = env[RUN_DIR_ENV] if run_dir else f"{paths.latest_link()} (the latest successful run)"
    print(f"Churn dashboard of {shown}\n  open http://127.0.0.1:{port}/   (Ctrl-C to stop)", flush=True)
    with subprocess.Popen(voila_command(port), env=env, cwd=paths.PROJECT_ROOT) as server:
        # Pass a termination on to Voila, which then stops its kernels; dying alone would orphan them.
        previous = signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        try:
            return server.wait()
        except KeyboardInterrupt:
            # Voila got the same Ctrl-C: give it time to shut its kernels down rather than killing it.
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.terminate()
            print("Dashboard stopped.")
            return 0
        finally:
            signal.signal(signal.SIGTERM, previous)
