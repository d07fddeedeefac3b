"""Throw-away Spark servers on 127.0.0.1, to try (and test) cluster mode on one machine.

A standalone cluster: the master and each worker are separate JVMs started from the pyspark
installation's ``spark-class``, so executors really are other processes than the driver: a file
written by an executor lands in the worker's directory, a Python object is pickled to the
executors, and anything the driver assumes about its own disk or memory shows up as a failure.

A Spark Connect server: the driver runs in its own JVM and the notebooks' kernels are thin gRPC
clients, so anything that needs the driver's JVM from Python (``sparkContext``, py4j) fails.

Try it::

    python -m sparkify_utils.runtime.local_servers            # prints the master URL; Ctrl-C (or kill) stops it
    PYSPARK_PYTHON=.venv/bin/python sparkify run -p spark_master=spark://127.0.0.1:7077
    python -m sparkify_utils.runtime.local_servers --connect  # a Spark Connect server on sc://127.0.0.1:15002
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pyspark

from sparkify_utils.runtime.session import LOG4J_OPTION

HOST = "127.0.0.1"
#: How long the JVMs get to start and the workers to register with the master.
START_TIMEOUT = 120.0
#: How long a JVM gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 20.0


class ClusterError(RuntimeError):
    """The local cluster did not start; the message carries the tail of the JVM logs."""


def spark_script(name: str = "spark-class") -> Path:
    """Path of ``bin/<name>`` (``spark-class``, ``spark-submit``) inside the installed pyspark package."""
    path = Path(pyspark.__file__).parent / "bin" / name
    if not path.exists():
        raise ClusterError(f"{path} is missing: reinstall pyspark (`pip install --force-reinstall pyspark`).")
    return path


def free_port(port: int = 0) -> int:
    """``port`` if it is free on 127.0.0.1 right now (0: any free port); a taken port is an error.

    Spark would silently move a taken port to the next one, and the URL printed would be wrong.
    """
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            msg = f"Port {port} on {HOST} is in use: choose another one, or 0 for any free port."
            raise ClusterError(msg) from None
        return sock.getsockname()[1]


def cluster_env() -> dict[str, str]:
    """Environment of the cluster's JVMs: loopback only, and this Python for the executors' workers."""
    return {
        **os.environ,
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "SPARK_LOCAL_IP": HOST,
        "PYSPARK_PYTHON": sys.executable,
    }


@dataclass
class LocalServers:
    """JVMs started on this machine, each in its own process group; ``stop()`` ends every process."""

    master_url: str
    work_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _owns_work_dir: bool = False
    #: Folder of the JVMs' logs inside ``work_dir``.
    log_dir: str = "logs"

    def log_path(self, name: str) -> Path:
        """The log file of the JVM started as ``name``."""
        return self.work_dir / self.log_dir / f"{name}.log"

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of every JVM's log, for error messages."""
        parts = []
        for name in self.processes:
            log = self.log_path(name)
            text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
            parts.append(f"--- {log} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def _launch(self, name: str, command: list[str]) -> None:
        self.log_path(name).parent.mkdir(parents=True, exist_ok=True)
        with self.log_path(name).open("wb") as log:
            # A new session per JVM: its executors and their Python workers share its process group,
            # so one killpg ends them all.
            self.processes[name] = subprocess.Popen(
                command,
                env=cluster_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def leftover_processes(self) -> list[str]:
        """``ps`` lines of live processes still in the servers' process groups (empty after ``stop()``).

        Zombies are skipped: they hold no resources and init reaps them once their parent is gone.
        """
        groups = {str(proc.pid) for proc in self.processes.values()}
        out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True)
        rows = [line.split(maxsplit=3) for line in out.stdout.splitlines()]
        return [" ".join(row) for row in rows if row[1] in groups and not row[2].startswith("Z")]

    def stop(self) -> None:
        """Stop the JVMs in reverse start order (SIGTERM, SIGKILL after a grace period); remove a temp work dir."""
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT)
            # The JVM may be gone while an executor or Python worker of its group is not.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        """``with start_local_cluster() as cluster:`` stops the servers however the block ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class LocalCluster(LocalServers):
    """A running standalone master and its workers."""

    webui_url: str = ""

    def state(self) -> dict[str, Any]:
        """The master's status JSON (workers, cores, running and completed applications)."""
        with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=5) as response:
            return json.load(response)

    def alive_workers(self) -> int:
        """Number of workers registered with the master and alive (0 while the master starts)."""
        try:
            state = self.state()
        except OSError:
            return 0
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def executor_logs(self) -> list[Path]:
        """The ``stderr`` files of every executor the workers have launched."""
        return sorted(self.work_dir.glob("worker-*/app-*/*/stderr"))

    def _wait_for_workers(self, workers: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.alive_workers() < workers:
            dead = [name for name, proc in self.processes.items() if proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"only {self.alive_workers()} after {timeout:.0f} s"
                raise ClusterError(f"Expected {workers} workers at {self.master_url}: {why}.\n{self.log_tail()}")
            time.sleep(0.5)


def start_local_cluster(
    workers: int = 2,
    cores: int = 1,
    memory: str = "2g",
    work_dir: str | Path | None = None,
    port: int = 0,
    webui_port: int = 0,
    timeout: float = START_TIMEOUT,
) -> LocalCluster:
    """Start a master and ``workers`` workers on 127.0.0.1 and return once all workers are registered.

    ``memory`` is what each worker offers to executors (``spark.executor.memory`` must fit in it);
    ports of 0 are picked free. Without ``work_dir`` a temporary one is used and removed on stop.
    """
    owns = work_dir is None
    root = Path(work_dir or tempfile.mkdtemp(prefix="sparkify-cluster-")).resolve()
    port, webui_port = free_port(port), free_port(webui_port)
    cluster = LocalCluster(
        master_url=f"spark://{HOST}:{port}",
        webui_url=f"http://{HOST}:{webui_port}",
        work_dir=root,
        _owns_work_dir=owns,
    )
    try:
        cluster._launch(
            "master",
            [
                str(spark_script()),
                "org.apache.spark.deploy.master.Master",
                "--host",
                HOST,
                "--port",
                str(port),
                "--webui-port",
                str(webui_port),
            ],
        )
        for index in range(workers):
            worker_dir = root / f"worker-{index}"
            worker_dir.mkdir(parents=True, exist_ok=True)
            cluster._launch(
                f"worker-{index}",
                [
                    str(spark_script()),
                    "org.apache.spark.deploy.worker.Worker",
                    cluster.master_url,
                    "--cores",
                    str(cores),
                    "--memory",
                    memory,
                    "--host",
                    HOST,
                    "--webui-port",
                    str(free_port()),
                    "--work-dir",
                    str(worker_dir),
                ],
            )
        cluster._wait_for_workers(workers, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_connect_server(
    master: str = "local[2]",
    driver_memory: str = "2g",
    work_dir: str | Path | None = None,
    port: int = 0,
    timeout: float = START_TIMEOUT,
    conf: Mapping[str, Any] | None = None,
    java_options: str = "",
    log_dir: str = "logs",
) -> LocalServers:
    """Start a Spark Connect server (its driver on ``master``) on 127.0.0.1; return once it accepts clients.

    The result's ``master_url`` is the ``sc://`` URL to pass as ``spark_master``. ``conf`` adds Spark
    settings (a client can change only SQL settings of its session; the others are fixed at the
    server's start); ``java_options`` are added to the driver JVM's options. The server's log goes to
    ``work_dir/log_dir/connect-server.log`` (without ``work_dir``, a temporary folder that ``stop()`` removes).
    Needs the client libraries of ``pip install -e .[connect]`` in the process that connects.
    """
    owns = work_dir is None
    root = Path(work_dir or tempfile.mkdtemp(prefix="sparkify-connect-")).resolve()
    port = free_port(port)
    server = LocalServers(master_url=f"sc://{HOST}:{port}", work_dir=root, _owns_work_dir=owns, log_dir=log_dir)
    settings = {
        "spark.connect.grpc.binding.address": HOST,
        "spark.connect.grpc.binding.port": port,
        "spark.ui.enabled": "false",
        **(conf or {}),
    }
    try:
        server._launch(
            "connect-server",
            [
                str(spark_script("spark-submit")),
                "--class",
                "org.apache.spark.sql.connect.service.SparkConnectServer",
                "--name",
                "sparkify-connect-server",
                "--master",
                master,
                "--driver-memory",
                driver_memory,
                "--driver-java-options",
                f"{LOG4J_OPTION} {java_options}".strip(),
                *(arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")),
            ],
        )
        deadline = time.monotonic() + timeout
        while not _accepts(port):
            proc = server.processes["connect-server"]
            if proc.poll() is not None or time.monotonic() > deadline:
                why = "exited" if proc.poll() is not None else f"not listening after {timeout:.0f} s"
                raise ClusterError(f"Spark Connect server on port {port} {why}.\n{server.log_tail()}")
            time.sleep(0.5)
    except BaseException:
        server.stop()
        raise
    return server


def connect_client_problem() -> str | None:
    """Why this Python cannot be a Spark Connect client (None: it can): the libraries of ``.[connect]``."""
    from pyspark.sql.connect.utils import check_dependencies

    try:
        check_dependencies()
    except ImportError as exc:
        return f"{exc} (pip install -e '.[connect]')"
    return None


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def _interrupt(signum: int, _frame: object) -> None:
    """Handle SIGTERM/SIGHUP like Ctrl-C, once: a second signal must not cut the servers' stop short."""
    signal.signal(signum, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run a local cluster (or, with --connect, a Spark Connect server) in the foreground until Ctrl-C or SIGTERM."""
    # The JVMs run in their own sessions, so they outlive this process unless it stops them. Python's default
    # SIGTERM (kill, a CI runner, a service manager) and SIGHUP (a closed terminal) exit without unwinding.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    parser = argparse.ArgumentParser(
        prog="python -m sparkify_utils.runtime.local_servers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cores", type=int, default=1, help="cores per worker")
    parser.add_argument("--memory", default="2g", help="memory each worker offers to executors")
    parser.add_argument("--port", type=int, default=None, help="master port, default 7077 (--connect: 15002)")
    parser.add_argument("--webui-port", type=int, default=8080, help="master web UI port (0 = any free port)")
    parser.add_argument("--connect", action="store_true", help="a Spark Connect server (driver on local[*])")
    args = parser.parse_args(argv)
    if args.connect:
        servers: LocalServers = start_connect_server(
            master="local[*]", driver_memory=args.memory, port=15002 if args.port is None else args.port
        )
        print(f"Spark Connect server: {servers.master_url}  (driver memory {args.memory}; logs in {servers.work_dir})")
        print(f"  try: sparkify run -p spark_master={servers.master_url}   (needs: pip install -e .[connect])")
    else:
        servers = start_local_cluster(
            workers=args.workers,
            cores=args.cores,
            memory=args.memory,
            port=7077 if args.port is None else args.port,
            webui_port=args.webui_port,
        )
        print(f"Spark standalone cluster: {servers.master_url}  (web UI {servers.webui_url})")
        print(f"  {args.workers} workers x {args.cores} core(s), {args.memory} each; logs in {servers.work_dir}")
        print(f"  try: PYSPARK_PYTHON={sys.executable} sparkify run -p spark_master={servers.master_url}")
    print("  Ctrl-C or SIGTERM stops it.", flush=True)
    with servers, contextlib.suppress(KeyboardInterrupt):
        while all(proc.poll() is None for proc in servers.processes.values()):
            time.sleep(1)
        print("A server process exited:\n" + servers.log_tail(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
