"""Execute the notebook sequence with papermill into a fresh run directory, and record the run.

Each run is immutable: ``outputs/runs/<run-id>/`` holds the executed notebooks, the artifacts they
wrote and ``manifest.json`` (parameters, versions, input fingerprint, timings, status).
``outputs/latest`` is switched atomically to a run only once every notebook has succeeded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sparkify_utils import artifacts, paths
from sparkify_utils.runtime import record, reuse
from sparkify_utils.runtime.class_archive import archive_options
from sparkify_utils.runtime.execute import (
    KernelNotRegistered,
    check_kernel,
    execute_notebook,
    sigint_ignored,
    sigterm_as_interrupt,
)
from sparkify_utils.runtime.local_servers import ClusterError, connect_client_problem, start_connect_server
from sparkify_utils.runtime.params import (
    RUNNER_KEYS,
    ParamError,
    load_params_file,
    notebook_parameters,
    parse_overrides,
    split_by_notebook,
)
from sparkify_utils.runtime.session import LOCAL_SHUFFLE_PARTITIONS, SPARK_REMOTE_ENV

#: Default per-cell timeout, generous enough for the full-size log on one machine.
DEFAULT_CELL_TIMEOUT = 3600
#: JVM options of the run's own Spark Connect server when the input is small (up to QUICK_JVM_MAX_BYTES): a
#: small log's work is hundreds of short Spark jobs, on which the JVM's optimising compiler (C2) and parallel
#: garbage collector spend more CPU than they save (see the README's speed section). Results do not change
#: (Java 17 floating point is strict). The code cache keeps the size the JVM gives it by default: alone, the
#: quick compiler gets 48 MB, which the code Spark generates over a whole run can fill ("Out of space in
#: CodeCache"), and the server then stops mid-run. Larger inputs keep the JVM's defaults; a user's own
#: ``spark.driver.extraJavaOptions`` in ``spark_conf`` replaces these.
QUICK_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=240m"
QUICK_JVM_MAX_BYTES = 256 << 20
#: Shuffle partitions per core of the run's server for such a small input: each shuffle task writes one file
#: per partition, and adaptive execution merges them only afterwards (measured on 2 cores: params/ci.yaml's
#: 01+02 in 48-52 s instead of 57-59 s with ``LOCAL_SHUFFLE_PARTITIONS``; the 128 MB default run 99-103 s either
#: way).
QUICK_SHUFFLE_PARTITIONS_PER_CORE = 2


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


def point_latest(run_dir: Path) -> None:
    """Point ``outputs/latest`` at ``run_dir`` atomically (a reader sees the old or the new run)."""
    link = paths.latest_link()
    tmp = link.with_name(f".latest-{secrets.token_hex(4)}")
    tmp.symlink_to(os.path.relpath(run_dir, link.parent))
    os.replace(tmp, link)


def _failure_message(name: str, output: Path, exc: BaseException) -> str:
    cell = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", None)
    where = f" in cell [{cell}]" if cell is not None else ""
    detail = f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}"
    return f"Notebook {name} failed{where}: {detail}\n  executed copy: {output}"


def _figures(run_dir: Path) -> dict[str, int]:
    """Modification time of every figure file, by path inside ``figures/`` (the steps share the folder)."""
    root = run_dir / artifacts.FIGURES.name
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _small_input(input_bytes: int | None) -> bool:
    """A local input of at most ``QUICK_JVM_MAX_BYTES`` (a remote input's size is unknown: not small)."""
    return input_bytes is not None and input_bytes <= QUICK_JVM_MAX_BYTES


def server_jvm_options(input_bytes: int | None, spark_conf: dict[str, Any]) -> str:
    """The run's Connect server JVM options: ``QUICK_JVM_OPTIONS`` for a local input of at most
    ``QUICK_JVM_MAX_BYTES``, and the Spark class archive's; none when ``spark_conf`` sets the driver's own."""
    if "spark.driver.extraJavaOptions" in spark_conf:
        return ""
    return f"{QUICK_JVM_OPTIONS if _small_input(input_bytes) else ''} {archive_options()}".strip()


def local_cores(master: str) -> int:
    """Cores of a local master: ``local`` 1, ``local[4]`` 4, ``local[*]`` (or ``local[*, 3]``) all of them."""
    threads = master.partition("[")[2].partition("]")[0].split(",")[0].strip()
    if not threads:
        return 1
    return (os.cpu_count() or 1) if threads == "*" else int(threads)


def run_shuffle_partitions(master: str, input_bytes: int | None, spark_conf: dict[str, Any]) -> int:
    """Shuffle partitions of the run's local server: ``QUICK_SHUFFLE_PARTITIONS_PER_CORE`` per core for an input
    of at most ``QUICK_JVM_MAX_BYTES``, else ``LOCAL_SHUFFLE_PARTITIONS``; ``spark_conf``'s own wins."""
    if "spark.sql.shuffle.partitions" in spark_conf:
        return int(spark_conf["spark.sql.shuffle.partitions"])
    if _small_input(input_bytes):
        return QUICK_SHUFFLE_PARTITIONS_PER_CORE * local_cores(master)
    return LOCAL_SHUFFLE_PARTITIONS


@contextlib.contextmanager
def _spark_for_run(
    steps: Sequence[str],
    effective: dict[str, dict[str, Any]],
    shared: bool,
    echo: Callable[[str], None],
    run_dir: Path,
    input_bytes: int | None = None,
) -> Iterator[dict[str, Any]]:
    """One Spark Connect server for the run's notebooks when their master is local; yields how Spark runs.

    Its log is kept in the run directory (``SPARK_LOGS``): a notebook's error over Spark Connect often shows
    only the last line of what went wrong in the driver.

    The kernels inherit ``SPARKIFY_SPARK_REMOTE``, which ``get_spark`` uses for a local master, so the
    notebooks' parameters stay as the user wrote them. Stopped however the run ends.
    """
    spark_steps = [s for s in steps if "spark_master" in effective[s]]
    master = effective[spark_steps[0]]["spark_master"] if spark_steps else ""
    # Only the runner sets the variable: a value left in the environment must not reach these kernels.
    previous = os.environ.pop(SPARK_REMOTE_ENV, None)
    server, info = None, {"mode": "per-notebook" if spark_steps else "none"}
    problem = connect_client_problem() if shared and master.startswith("local") else None
    if problem:
        echo(f"Each notebook starts its own Spark: no Spark Connect client here ({problem}).")
    elif shared and master.startswith("local"):
        settings, started = effective[spark_steps[0]], time.perf_counter()
        conf = settings.get("spark_conf") or {}
        java_options = server_jvm_options(input_bytes, conf)
        partitions = run_shuffle_partitions(master, input_bytes, conf)
        try:
            server = start_connect_server(
                master=master,
                driver_memory=settings["driver_memory"],
                conf={**conf, "spark.sql.shuffle.partitions": partitions},
                java_options=java_options,
                work_dir=run_dir,
                log_dir=artifacts.SPARK_LOGS.name,
            )
        except ClusterError as exc:
            echo(f"Each notebook starts its own Spark: the run's Spark Connect server did not start ({exc})")
            info["connect_server_error"] = str(exc).splitlines()[0]
    if server:
        info = {
            "mode": "connect-server",
            "url": server.master_url,
            "pid": server.processes["connect-server"].pid,
            "master": master,
            "driver_memory": settings["driver_memory"],
            "java_options": java_options,
            "shuffle_partitions": partitions,
            "log": str(server.log_path("connect-server")),
            "start_seconds": round(time.perf_counter() - started, 1),
        }
        echo(
            f"Spark for this run: {server.master_url} ({master}, driver memory {settings['driver_memory']}"
            + (", quick-start JVM for a small input" if QUICK_JVM_OPTIONS in java_options else "")
            + f", {partitions} shuffle partitions"
            + f"), started in {info['start_seconds']:.1f} s"
        )
        os.environ[SPARK_REMOTE_ENV] = server.master_url
    try:
        yield info
    finally:
        with sigint_ignored():
            os.environ.pop(SPARK_REMOTE_ENV, None)
            if previous is not None:
                os.environ[SPARK_REMOTE_ENV] = previous
            if server:
                server.stop()


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped with Ctrl-C; the message says where, and that ``latest`` is unchanged."""


def _current(
    effective: dict[str, dict[str, Any]], input_info: dict[str, Any], versions: dict[str, Any]
) -> reuse.Current:
    return reuse.Current(
        fingerprint=input_info.get("fingerprint"),
        parameters={step: record.redact(values) for step, values in effective.items()},
        code={step: reuse.code_fingerprint(step, versions) for step in artifacts.STEPS},
    )


def run(
    params_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    only: Sequence[str] | None = None,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    execute: Callable[[Path, Path, dict[str, Any], int], None] | None = None,
    echo: Callable[[str], None] = print,
    force: bool = False,
    shared_spark: bool = True,
) -> Path:
    """Run the notebooks into a new run directory and return it; raise RunError on failure.

    Steps that an earlier run computed from the same input, parameters and code are reused (see
    :mod:`sparkify_utils.runtime.reuse`) unless ``force``; ``shared_spark`` starts one Spark Connect
    server for the run's notebooks when their master is local. Ctrl-C raises :class:`RunInterrupted`.
    """
    params_file = Path(params_file) if params_file else paths.PARAMS_DIR / "default.yaml"
    params = {**load_params_file(params_file), **parse_overrides(overrides)}
    selected = select_notebooks(only)
    declared = {nb: notebook_parameters(paths.notebook_path(nb)) for nb in artifacts.STEPS}
    per_notebook = split_by_notebook(params, declared)
    input_path = paths.resolve_input_path(str(params.get("input_path", "")))
    if artifacts.EDA in selected:
        ensure_input(input_path, echo)
    if execute is None:
        try:
            check_kernel()
        except KernelNotRegistered as exc:
            raise RunError(str(exc)) from None
        execute = execute_notebook

    run_id = new_run_id()
    run_dir = paths.runs_dir() / run_id
    spark_dir = str(params.get("spark_dir") or "")
    # A shared spark_dir (e.g. s3a://bucket/sparkify) gets one folder per run, like run_dir.
    run_spark_dir = f"{spark_dir.rstrip('/')}/{run_id}" if spark_dir else ""
    effective = {
        nb: {k: v for k, v in {**declared[nb], **per_notebook[nb]}.items() if k not in RUNNER_KEYS}
        | ({"spark_dir": run_spark_dir} if "spark_dir" in declared[nb] else {})
        for nb in artifacts.STEPS
    }
    versions = record.environment_versions()
    input_info = record.fingerprint_input(input_path)
    current = _current(effective, input_info, versions)
    try:
        plan = reuse.plan(
            selected,
            bool(only),
            current,
            reuse.earlier_runs(),
            force=force,
            local_spark_dir=not paths.is_url(spark_dir),
        )
    except reuse.ReuseError as exc:
        raise RunError(str(exc)) from None

    layout = paths.run_paths(str(run_dir), run_spark_dir)
    (run_dir / artifacts.EXECUTED.name).mkdir()
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "status": "running",
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "params_file": str(params_file),
        "parameters": record.redact(params),
        "notebooks": {nb: {"status": "pending"} for nb in artifacts.STEPS if nb in plan.reused + plan.run},
        "reuse": {
            "from": plan.source.run_id if plan.source else None,
            "steps": list(plan.reused),
            "message": plan.message(),
        },
        "git": record.git_commit(),
        "versions": versions,
        "input": input_info,
        "spark_dir": layout.spark_dir,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    manifest_path = run_dir / artifacts.MANIFEST.name
    record.write_json(manifest_path, manifest)
    echo(f"Run {run_id} -> {run_dir}")
    echo(plan.message())
    started = time.perf_counter()
    with sigterm_as_interrupt():
        try:
            manifest["notebooks"].update(reuse.materialize(plan, run_dir, layout.spark_dir))
            record.write_json(manifest_path, manifest)
            with _spark_for_run(plan.run, effective, shared_spark, echo, run_dir, input_info.get("bytes")) as spark:
                manifest["spark"] = spark
                for index, step in enumerate(plan.run, 1):
                    nb_params = {**per_notebook[step], "run_dir": str(run_dir)}
                    if nb_params.get("spark_dir"):
                        nb_params["spark_dir"] = run_spark_dir
                    output = run_dir / artifacts.EXECUTED.name / f"{step}.ipynb"
                    manifest["notebooks"][step].update(
                        status="running",
                        output=str(output),
                        parameters=current.parameters[step],
                        code=current.code[step],
                    )
                    record.write_json(manifest_path, manifest)
                    _run_step(step, f"[{index}/{len(plan.run)}]", nb_params, manifest, execute, cell_timeout, echo)
                    record.write_json(manifest_path, manifest)
        except KeyboardInterrupt:
            with sigint_ignored():
                running = [name for name, nb in manifest["notebooks"].items() if nb["status"] == "running"]
                for name in running:
                    manifest["notebooks"][name]["status"] = "interrupted"
                manifest.update(status="interrupted", seconds=round(time.perf_counter() - started, 1))
                record.write_json(manifest_path, manifest)
            begun = any(nb["status"] == "ok" for nb in manifest["notebooks"].values())
            where = f"during {running[0]}" if running else "between notebooks" if begun else "before the first notebook"
            raise RunInterrupted(
                f"interrupted {where}; run {run_id} is recorded as interrupted, outputs/latest is unchanged"
            ) from None
        except Exception as exc:
            manifest.update(status="failed", seconds=round(time.perf_counter() - started, 1))
            manifest.setdefault("error", f"{type(exc).__name__}: {exc}")
            record.write_json(manifest_path, manifest)
            raise
    manifest.update(status="ok", seconds=round(time.perf_counter() - started, 1))
    manifest["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    record.write_json(manifest_path, manifest)
    point_latest(run_dir)
    return run_dir


def _run_step(
    step: str,
    counter: str,
    nb_params: dict[str, Any],
    manifest: dict[str, Any],
    execute: Callable[[Path, Path, dict[str, Any], int], None],
    cell_timeout: int,
    echo: Callable[[str], None],
) -> None:
    """Execute one notebook, keeping its manifest record up to date; raise RunError naming the cell when it fails."""
    run_dir, record = Path(nb_params["run_dir"]), manifest["notebooks"][step]
    output = Path(record["output"])
    echo(f"{counter} {step} ...")
    before, t0 = _figures(run_dir), time.perf_counter()
    try:
        execute(paths.notebook_path(step), output, nb_params, cell_timeout)
    except Exception as exc:
        record["status"] = "failed"
        server_log = manifest.get("spark", {}).get("log")
        manifest["error"] = _failure_message(step, output, exc) + (
            f"\n  Spark server log: {server_log}" if server_log else ""
        )
        raise RunError(manifest["error"] + "\n  outputs/latest was left unchanged.") from exc
    finally:
        record["seconds"] = round(time.perf_counter() - t0, 1)
    after = _figures(run_dir)
    record.update(status="ok", figures=sorted(f for f, mtime in after.items() if before.get(f) != mtime))
    echo(f"{counter} {step} done in {record['seconds']:.1f} s")
