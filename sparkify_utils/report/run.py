"""One run as a reader sees it: which run to show, and its artifacts checked against the registry.

A missing artifact names the step that writes it and why it is missing (the step failed, did not run,
or reported success without writing it). Reads only the small driver-written files, never Spark.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sparkify_utils import paths
from sparkify_utils.artifacts import EDA, EXECUTED, FEATURES, MANIFEST, MODELS, Artifact

#: Environment variable through which ``serve`` tells the Voila kernel which run to show.
RUN_DIR_ENV = "SPARKIFY_RUN_DIR"


class MissingArtifact(FileNotFoundError):
    """An artifact the dashboard needs is not in the run; the message names the notebook that writes it."""


class ArtifactError(ValueError):
    """An artifact exists but does not have the expected content (e.g. a column is missing)."""


@dataclass(frozen=True)
class Run:
    """One run directory as the dashboard sees it.

    ``strict`` is set when the runner executes the dashboard as the last step of a run: then a
    malformed artifact, or a missing one whose notebook reported success, fails the run instead of
    being shown as a notice (a notice is right for a viewer of an old or partial run).
    """

    path: Path
    strict: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)

    def file(self, artifact: Artifact) -> Path:
        """Path of an artifact; raise MissingArtifact naming the notebook that should have written it."""
        path = self.path / artifact.name
        if path.is_file():
            return path
        writer = artifact.writer
        state = self.manifest.get("notebooks", {}).get(writer, {}).get("status")
        why = {
            "failed": f"notebook {writer} failed in this run (see {self.path / EXECUTED.name / writer}.ipynb)",
            "ok": f"notebook {writer} reported success but did not write it",
            "pending": f"notebook {writer} has not run yet in this run",
        }.get(state, f"it is written by notebook {writer}, which did not run in this run")
        message = f"{artifact.name} is missing from run {self.path.name}: {why}."
        if self.strict and state == "ok":
            raise ArtifactError(message)
        raise MissingArtifact(message)

    def json(self, artifact: Artifact) -> dict[str, Any]:
        """A JSON artifact, checked for the top-level keys its readers rely on (``artifact.columns``)."""
        data = json.loads(self.file(artifact).read_text())
        missing = [k for k in artifact.columns if k not in data]
        if missing:
            raise ArtifactError(f"{artifact.name} lacks {missing} (it has {sorted(data)}); re-run {artifact.writer}.")
        return data

    def csv(self, artifact: Artifact) -> pd.DataFrame:
        """A CSV artifact, checked for the columns its readers rely on (``artifact.columns``)."""
        table = pd.read_csv(self.file(artifact), dtype={"userId": str})
        missing = [c for c in artifact.columns if c not in table.columns]
        if missing:
            raise ArtifactError(
                f"{artifact.name} lacks columns {missing} (it has {list(table.columns)}); re-run {artifact.writer}."
            )
        return table


def resolve_run_dir(run_dir: str = "") -> Path:
    """The run to show: ``run_dir`` if given, else ``$SPARKIFY_RUN_DIR``, else the interactive run directory.

    The last is where notebooks 01-03 write when opened on their own in JupyterLab, so the dashboard
    opened the same way shows the same run; ``sparkify dashboard`` sets the variable (to
    ``outputs/latest`` unless told otherwise).
    """
    chosen = run_dir or os.environ.get(RUN_DIR_ENV, "")
    if not chosen:
        return paths.interactive_run_dir()
    path = Path(chosen).expanduser()
    if not path.is_absolute() and not path.exists() and (paths.runs_dir() / chosen).exists():
        return paths.runs_dir() / chosen  # a bare run id
    return path if path.is_absolute() else paths.PROJECT_ROOT / path


def open_run(run_dir: str = "") -> Run | None:
    """Open the run to show (see :func:`resolve_run_dir`), or None when it does not exist."""
    path = resolve_run_dir(run_dir)
    if not path.is_dir():
        return None
    manifest_path = path / MANIFEST.name
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    return Run(path=path.resolve(), strict=bool(run_dir), manifest=manifest)


def no_run_message(run_dir: str = "") -> str:
    """What the page says when there is no run to show, with the command that makes one."""
    path = resolve_run_dir(run_dir)
    if path == paths.latest_link():
        return (
            f"No run yet: {path} does not exist. Run <code>make run</code> (or <code>sparkify run</code>) "
            "to analyse the data, then reload this page."
        )
    if path == paths.interactive_run_dir():
        return (
            f"No interactive run yet: {html.escape(str(path))} does not exist. Run notebooks {EDA}, {FEATURES} "
            f"and {MODELS} in JupyterLab first (they write there), or serve the last batch run with "
            "<code>make dashboard</code>."
        )
    return (
        f"Run directory {html.escape(str(path))} does not exist. Choose an existing run under "
        f"{html.escape(str(paths.runs_dir()))}, or run <code>make run</code> to make a new one."
    )
