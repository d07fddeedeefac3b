"""Executing one notebook with papermill so that Ctrl-C stops it, and its kernel, at once.

Jupyter kernels start in their own session, so a Ctrl-C in the terminal reaches the runner but not the
kernel. Run in the main thread, papermill (nbclient) would catch that SIGINT itself, shut the kernel down
and report a dead kernel, so an interrupt would look like a failed notebook. Here papermill runs in a
worker thread (nbclient installs no signal handler outside the main thread): the main thread gets the
``KeyboardInterrupt``, stops the kernel's process group (its Spark driver JVM, in local mode, is in it)
and re-raises.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from jupyter_client.manager import AsyncKernelManager

from sparkify_utils import paths

#: Seconds a kernel gets to exit after SIGTERM before its process group is killed.
KERNEL_STOP_TIMEOUT = 5.0
#: Seconds an interrupted notebook's thread gets to notice its kernel is gone.
THREAD_STOP_TIMEOUT = 30.0


class KernelNotRegistered(RuntimeError):
    """The project's Jupyter kernel is missing; the message says how to register it."""


class TrackedKernelManager(AsyncKernelManager):
    """A kernel manager that remembers its instances, so an interrupted run can stop their kernels."""

    instances: ClassVar[weakref.WeakSet[TrackedKernelManager]] = weakref.WeakSet()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        TrackedKernelManager.instances.add(self)

    def stop_now(self) -> None:
        """End the kernel's process group: SIGTERM, then SIGKILL if it is still there after a grace period."""
        process: subprocess.Popen | None = getattr(self.provisioner, "process", None)
        if process is None or process.poll() is not None:
            return
        group = getattr(self.provisioner, "pgid", None) or process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(KERNEL_STOP_TIMEOUT)
        # The kernel may be gone while a child of its group (a Spark driver JVM) is not.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def check_kernel() -> None:
    """Fail early, with the fix, when the project's Jupyter kernel is not registered."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(paths.KERNEL_NAME)
    except NoSuchKernel:
        raise KernelNotRegistered(
            f"The Jupyter kernel {paths.KERNEL_NAME!r} is not registered. Run `make setup`, or "
            f"`python -m ipykernel install --sys-prefix --name {paths.KERNEL_NAME}` in this environment."
        ) from None


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Handle SIGTERM (``kill``, ``timeout``) like Ctrl-C, so the run's kernels and Spark are stopped too.

    Without this, SIGTERM would end the runner at once and leave its Spark Connect server (a process
    of its own session) running. Main thread only; elsewhere a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore further Ctrl-C (and SIGTERM) while cleaning up after one (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _papermill(notebook: Path, output: Path, parameters: dict[str, Any], cell_timeout: int) -> None:
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
        kernel_manager_class=TrackedKernelManager,
    )


def execute_notebook(notebook: Path, output: Path, parameters: dict[str, Any], cell_timeout: int) -> None:
    """Execute ``notebook`` into ``output`` with ``parameters``; on Ctrl-C stop its kernel and re-raise."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            _papermill(notebook, output, parameters, cell_timeout)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            failure.append(exc)

    worker = threading.Thread(target=target, name=f"papermill-{notebook.stem}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)  # short waits: the main thread takes Ctrl-C between them
    except KeyboardInterrupt:
        # What papermill logs while its kernel is stopped ("kernel died", ...) is the interrupt's doing, not news.
        log = logging.getLogger("papermill")
        log.disabled = True
        try:
            with sigint_ignored():
                stop_kernels(worker)
        finally:
            log.disabled = False
        raise
    if failure:
        raise failure[0]


def stop_kernels(worker: threading.Thread) -> None:
    """Stop every kernel of this process until ``worker`` (which may still be starting one) has ended."""
    deadline = time.monotonic() + THREAD_STOP_TIMEOUT
    while True:
        for manager in list(TrackedKernelManager.instances):
            manager.stop_now()
        worker.join(0.5)
        if not worker.is_alive() or time.monotonic() > deadline:
            return
