"""Execute the notebook sequence with papermill into a fresh run directory, and record the run.

Each run is immutable: ``outputs/runs/<run-id>/`` holds the executed notebooks, the artifacts they
wrote and ``manifest.json`` (parameters, versions, input fingerprint, timings, status).
``outputs/latest`` is switched atomically to a run only once every notebook has succeeded.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from sparkify_utils import artifacts, paths
from sparkify_utils.runtime.params import (
    ParamError,
    load_params_file,
    notebook_parameters,
    parse_overrides,
    split_by_notebook,
)

#: Default per-cell timeout, generous enough for the full-size log on one machine.
DEFAULT_CELL_TIMEOUT = 3600
#: Inputs up to this size are hashed in full; larger ones are fingerprinted from samples.
FULL_HASH_LIMIT = 1 << 30
_SAMPLE = 1 << 20
_VERSIONED = (
    "sparkify-churn", "pyspark", "pandas", "numpy", "pyarrow", "scipy", "papermill", "nbclient",
    "ipykernel", "plotly", "voila", "ipywidgets", "pyyaml",
)


class RunError(RuntimeError):
    """A run failed; the message names the notebook, the cell and the executed copy."""


def select_notebooks(only: Sequence[str] | None) -> list[str]:
    """Return the notebooks to execute, in their fixed order; ``only`` accepts names or prefixes."""
    if not only:
        return list(artifacts.STEPS)
    chosen = set()
    for name in only:
        stem = Path(name).stem
        matches = [nb for nb in artifacts.STEPS if nb == stem or nb.startswith(stem)]
        if len(matches) != 1:
            raise ParamError(
                f"--only {name!r} matches {len(matches)} notebooks; choose from {', '.join(artifacts.STEPS)}."
            )
        chosen.add(matches[0])
    return [nb for nb in artifacts.STEPS if nb in chosen]


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a random suffix."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def fingerprint_input(path: str) -> dict[str, Any]:
    """Size and a content fingerprint of a local input (file, directory or glob).

    Inputs up to 1 GiB are hashed in full (sha256); larger ones hash each file's size plus its
    first and last MiB, which is fast on 12 GB and still changes when a file is replaced.
    Remote URLs are recorded without a fingerprint.
    """
    if paths.is_url(path) and not path.startswith("file://"):
        return {"path": path, "fingerprint": None, "note": "remote input: not fingerprinted"}
    local = path.removeprefix("file://")
    base = Path(local) if os.path.isdir(local) else None
    if base:
        files = sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
    else:
        files = sorted(Path(p) for p in glob.glob(local) if os.path.isfile(p))
    if not files:
        return {"path": path, "files": 0, "bytes": 0, "fingerprint": None}
    total = sum(f.stat().st_size for f in files)
    digest = hashlib.sha256()
    full = total <= FULL_HASH_LIMIT
    for f in files:
        size = f.stat().st_size
        digest.update(f"{f.relative_to(base) if base else f.name}:{size}".encode())
        with f.open("rb") as handle:
            if full:
                for block in iter(lambda h=handle: h.read(1 << 22), b""):
                    digest.update(block)
            else:
                digest.update(handle.read(_SAMPLE))
                handle.seek(max(0, size - _SAMPLE))
                digest.update(handle.read(_SAMPLE))
    method = "sha256" if full else "sha256-sampled (size + first/last MiB of each file)"
    return {"path": path, "files": len(files), "bytes": total, "fingerprint": digest.hexdigest(), "method": method}


def ensure_input(input_path: str, echo: Callable[[str], None] = print) -> None:
    """Generate a missing embedded synthetic log; any other missing local input is an error."""
    if paths.is_url(input_path) or glob.glob(input_path):
        return
    path = Path(input_path)
    if path.parent == paths.data_dir() and path.name in paths.EMBEDDED_LOGS:
        from sparkify_utils.synth.generate import generate_log

        users = paths.EMBEDDED_LOGS[path.name]
        echo(f"Generating the embedded synthetic log ({users} users, seed {paths.EMBEDDED_SEED}) -> {path}")
        generate_log(path, users=users, seed=paths.EMBEDDED_SEED)
        return
    raise RunError(
        f"Input {input_path} does not exist. Check input_path in the params file or pass "
        f"-p input_path=PATH (relative paths are read from {paths.data_dir()})."
    )


def _git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=paths.PROJECT_ROOT, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    return {"commit": commit or None, "dirty": bool(git("status", "--porcelain")) if commit else None}


def environment_versions() -> dict[str, Any]:
    """Versions of Python, Java and the packages that shape a run's results."""
    versions: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    versions["java"] = (java.stderr.splitlines() or [None])[0]
    return versions


def redact(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters safe to record: access tokens in a Spark Connect URL are masked."""
    return {k: re.sub(r"(token=)[^;]*", r"\1***", v) if isinstance(v, str) else v for k, v in params.items()}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def point_latest(run_dir: Path) -> None:
    """Point ``outputs/latest`` at ``run_dir`` atomically (a reader sees the old or the new run)."""
    link = paths.latest_link()
    tmp = link.with_name(f".latest-{secrets.token_hex(4)}")
    tmp.symlink_to(os.path.relpath(run_dir, link.parent))
    os.replace(tmp, link)


def _default_execute(notebook: Path, output: Path, parameters: dict[str, Any], cell_timeout: int) -> None:
    import papermill

    papermill.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        kernel_name=paths.KERNEL_NAME,
        execution_timeout=cell_timeout,
        progress_bar=False,
        log_output=False,
        cwd=str(paths.PROJECT_ROOT),
        # The kernel is local to this batch; its start-up notice about unencrypted TCP would repeat per notebook.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )


def _failure_message(name: str, output: Path, exc: BaseException) -> str:
    cell = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", None)
    where = f" in cell [{cell}]" if cell is not None else ""
    detail = f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}"
    return f"Notebook {name} failed{where}: {detail}\n  executed copy: {output}"


def check_kernel() -> None:
    """Fail early, with the fix, when the project's Jupyter kernel is not registered."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(paths.KERNEL_NAME)
    except NoSuchKernel:
        raise RunError(
            f"The Jupyter kernel {paths.KERNEL_NAME!r} is not registered. Run `make setup`, or "
            f"`python -m ipykernel install --sys-prefix --name {paths.KERNEL_NAME}` in this environment."
        ) from None


def run(
    params_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    only: Sequence[str] | None = None,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    execute: Callable[[Path, Path, dict[str, Any], int], None] | None = None,
    echo: Callable[[str], None] = print,
) -> Path:
    """Run the notebooks into a new run directory and return it; raise RunError on failure."""
    params_file = Path(params_file) if params_file else paths.PARAMS_DIR / "default.yaml"
    params = {**load_params_file(params_file), **parse_overrides(overrides)}
    notebooks = select_notebooks(only)
    declared = {nb: notebook_parameters(paths.notebook_path(nb)) for nb in artifacts.STEPS}
    per_notebook = split_by_notebook(params, declared)
    input_path = paths.resolve_input_path(str(params.get("input_path", "")))
    if artifacts.EDA in notebooks:
        ensure_input(input_path, echo)
    if execute is None:
        check_kernel()
        execute = _default_execute

    run_id = new_run_id()
    run_dir = paths.runs_dir() / run_id
    (run_dir / artifacts.EXECUTED.name).mkdir(parents=True)
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "status": "running",
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "params_file": str(params_file),
        "parameters": redact(params),
        "notebooks": {nb: {"status": "pending"} for nb in notebooks},
        "git": _git_commit(),
        "versions": environment_versions(),
        "input": fingerprint_input(input_path) if artifacts.EDA in notebooks else None,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    manifest_path = run_dir / artifacts.MANIFEST.name
    _write_json(manifest_path, manifest)
    echo(f"Run {run_id} -> {run_dir}")
    started = time.perf_counter()
    for index, name in enumerate(notebooks, 1):
        output = run_dir / artifacts.EXECUTED.name / f"{name}.ipynb"
        nb_params = {**per_notebook[name], "run_dir": str(run_dir)}
        if nb_params.get("spark_dir"):
            # A shared spark_dir (e.g. s3a://bucket/sparkify) gets one folder per run, like run_dir.
            nb_params["spark_dir"] = f"{nb_params['spark_dir'].rstrip('/')}/{run_id}"
        echo(f"[{index}/{len(notebooks)}] {name} ...")
        t0 = time.perf_counter()
        try:
            execute(paths.notebook_path(name), output, nb_params, cell_timeout)
        except BaseException as exc:  # noqa: BLE001 - record interrupts too, then re-raise
            seconds = round(time.perf_counter() - t0, 1)
            manifest["notebooks"][name] = {"status": "failed", "seconds": seconds, "output": str(output)}
            manifest.update(status="failed", error=_failure_message(name, output, exc))
            manifest["seconds"] = round(time.perf_counter() - started, 1)
            _write_json(manifest_path, manifest)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise RunError(manifest["error"] + "\n  outputs/latest was left unchanged.") from exc
        seconds = round(time.perf_counter() - t0, 1)
        manifest["notebooks"][name] = {"status": "ok", "seconds": seconds, "output": str(output)}
        _write_json(manifest_path, manifest)
        echo(f"[{index}/{len(notebooks)}] {name} done in {seconds:.1f} s")
    manifest.update(status="ok", seconds=round(time.perf_counter() - started, 1))
    manifest["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _write_json(manifest_path, manifest)
    point_latest(run_dir)
    return run_dir
