"""Reusing the steps of an earlier run that would compute the same thing again.

A researcher who changes a model parameter should not wait for the load and the features again.
Before a run, :func:`plan` looks at the earlier runs' manifests and picks the longest prefix of
steps (``01_eda``, then ``02_features``, ...) that one earlier run has already computed with

* the same **input**: the same content fingerprint (a remote input is not fingerprinted, so it is
  never reused);
* the same **parameters**: the effective value (the notebook's default unless set) of every
  parameter the step declares, except where the run writes (:data:`LOCATION_KEYS`). The Spark master
  and driver memory count: results on a cluster or over Spark Connect agree with local mode only to a
  tolerance (tests/test_cluster.py), and "same parameters, same numbers" is meant exactly;
* the same **code**: a hash of the step's code cells, of every ``sparkify_utils`` module they
  import (transitively) and of the versions of Python, Java and the libraries that shape results.
  This is the bytes that run, not the git commit: an uncommitted edit to a module the step uses
  prevents reuse, while a commit that touches only other steps' modules does not;
* the step's status ``ok`` (or ``reused``) in that run, every artifact it writes present, and its
  Spark datasets on a local disk (datasets on object storage are not linked: such steps run again).

Reused steps come from one run, as a prefix, because each step reads what the steps before it wrote.
A step that writes no artifact (the dashboard check) always runs: it checks the new run directory.
:func:`materialize` then fills the new run directory: the small driver files and the executed
notebooks are copied, the Spark datasets hard-linked file by file (no copy, no extra disk, and the new
run stays whole if the earlier one is deleted; a symlink to the directory where hard links are not
possible, e.g. across file systems).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparkify_utils import artifacts, paths

#: Parameters that say where a run writes, not what a step computes (each run has its own directories).
LOCATION_KEYS = ("run_dir", "spark_dir")
#: A step that, given this parameter, reads the user's own table instead of its upstream steps' outputs.
INDEPENDENT_WITH = {artifacts.MODELS: "features_path"}
#: Step statuses whose outputs are complete in their run directory.
DONE = ("ok", "reused")
_PACKAGE = __name__.split(".")[0]


class ReuseError(RuntimeError):
    """Steps that ``--only`` needs cannot be taken from an earlier run; the message says why and what to do."""


def _module_file(module: str) -> Path | None:
    base = paths.PROJECT_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(source: str) -> set[str] | None:
    """Names of the package's modules that ``source`` imports (None: unparsable, e.g. a cell magic)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from pkg import module` imports a module, `from pkg.module import name` a name: try both.
            names.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
    modules = {n for n in names if n.split(".")[0] == _PACKAGE and _module_file(n)}
    # Importing a.b.c runs the __init__ of a and a.b as well.
    return modules | {".".join(m.split(".")[:i]) for m in modules for i in range(1, m.count(".") + 1)}


def code_files(sources: Sequence[str]) -> list[Path]:
    """The package's source files that code ``sources`` run, following imports transitively."""
    every = sorted((paths.PROJECT_ROOT / _PACKAGE).rglob("*.py"))
    seen: set[str] = set()
    todo = list(sources)
    while todo:
        found = _imported_modules(todo.pop())
        if found is None:
            return every  # cannot tell what it imports: then all of the package matters
        for module in found - seen:
            seen.add(module)
            todo.append(_module_file(module).read_text())
    return sorted(_module_file(m) for m in seen)


def code_fingerprint(step: str, versions: Mapping[str, Any]) -> str:
    """Hash of what decides a step's results: its code cells, the modules they import, library versions.

    Markdown cells do not count; the platform string (kernel release) does not either.
    """
    notebook = json.loads(paths.notebook_path(step).read_text())
    sources = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.encode() + b"\0")
    for path in code_files(sources):
        digest.update(f"{path.relative_to(paths.PROJECT_ROOT)}\0".encode() + path.read_bytes())
    digest.update(json.dumps({k: v for k, v in versions.items() if k != "platform"}, sort_keys=True).encode())
    return digest.hexdigest()


def comparable(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that decide a step's results, as they read back from JSON (tuples become lists)."""
    kept = {k: v for k, v in parameters.items() if k not in LOCATION_KEYS}
    return json.loads(json.dumps(kept, default=str))


def needs(step: str, parameters: Mapping[str, Any]) -> set[str]:
    """The steps whose artifacts ``step`` reads (per the registry), unless a parameter makes it independent."""
    if parameters.get(INDEPENDENT_WITH.get(step, ""), ""):
        return set()
    return {a.writer for a in artifacts.ARTIFACTS if step in a.readers and a.writer in artifacts.STEPS}


@dataclass(frozen=True)
class Earlier:
    """An earlier run as a source of steps: its directory, manifest and Spark dataset directory."""

    run_dir: Path
    manifest: dict[str, Any]

    @property
    def run_id(self) -> str:
        """The earlier run's id."""
        return self.run_dir.name

    def step(self, name: str) -> dict[str, Any]:
        """The manifest's record of one step (empty if the step is not in that run)."""
        return self.manifest.get("notebooks", {}).get(name, {})

    def origin(self, name: str) -> str:
        """The run that executed ``name`` (this one, or the one this run reused it from)."""
        return self.step(name).get("reused_from") or self.run_id


def earlier_runs() -> list[Earlier]:
    """The runs in ``outputs/runs`` with a readable manifest, newest first (run ids sort by time)."""
    found = []
    root = paths.runs_dir()
    for run_dir in sorted(root.iterdir() if root.is_dir() else [], reverse=True):
        try:
            found.append(Earlier(run_dir, json.loads((run_dir / artifacts.MANIFEST.name).read_text())))
        except (OSError, ValueError):
            continue  # a run being created, or a directory that is not a run
    return found


@dataclass(frozen=True)
class Current:
    """What the new run would compute: input fingerprint, each step's effective parameters and code."""

    fingerprint: str | None
    parameters: Mapping[str, Mapping[str, Any]]
    code: Mapping[str, str]


def refusal(step: str, current: Current, earlier: Earlier) -> str | None:
    """Why ``earlier``'s ``step`` cannot stand in for this run's (None: it can)."""
    record, run_id = earlier.step(step), earlier.run_id
    if record.get("status") not in DONE:
        state = {"failed": "failed", "interrupted": "was interrupted"}.get(record.get("status"), "did not run")
        return f"{step} {state} in run {run_id}"
    if current.fingerprint is None:
        return "the input is remote or missing, so it is not fingerprinted and could have changed"
    if (earlier.manifest.get("input") or {}).get("fingerprint") != current.fingerprint:
        return f"the input differs from run {run_id}'s"
    if "code" not in record:
        return f"run {run_id} predates reuse (its manifest has no code fingerprint)"
    if record["code"] != current.code[step]:
        return f"the code of {step} (notebook, a module it imports, or a library version) changed since run {run_id}"
    before, now = comparable(record.get("parameters", {})), comparable(current.parameters[step])
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            return f"parameter {key} of {step} is {now.get(key)!r} (run {run_id}: {before.get(key)!r})"
    spark_dir = earlier.manifest.get("spark_dir", "")
    if paths.is_url(spark_dir):
        return f"run {run_id}'s datasets are on {spark_dir}, which is not linked"
    for artifact in artifacts.written_by(step):
        if artifact.optional or artifact is artifacts.FIGURES:
            continue
        where = earlier.run_dir if artifact.store == "run" else Path(spark_dir)
        if not (where / artifact.name).exists():
            return f"{artifact.name} is missing from run {run_id}"
    copies = [f"{artifacts.EXECUTED.name}/{step}.ipynb", *(f"{artifacts.FIGURES.name}/{f}" for f in record["figures"])]
    missing = [c for c in copies if not (earlier.run_dir / c).is_file()]
    return f"{missing[0]} is missing from run {run_id}" if missing else None


@dataclass(frozen=True)
class Plan:
    """Which steps come from which earlier run, which steps run, and why no more is reused."""

    reused: tuple[str, ...]
    source: Earlier | None
    run: tuple[str, ...]
    why: str = ""

    def message(self) -> str:
        """One line for the console: what is reused from where, what runs, and why."""
        running = f"running {', '.join(self.run)}" if self.run else "nothing to run"
        if not self.reused:
            return f"Nothing reused ({self.why}); {running}" if self.why else running.capitalize()
        because = f" ({self.why})" if self.why else ""
        return (
            f"{', '.join(self.reused)} reused from run {self.source.run_id} (same input, parameters and "
            f"code); {running}{because}"
        )


def _reusable_prefix(steps: Sequence[str], current: Current, earlier: Earlier) -> tuple[tuple[str, ...], str]:
    """The leading ``steps`` that ``earlier`` can provide, and why the next one cannot ('' if all can)."""
    prefix: list[str] = []
    for step in steps:
        why = refusal(step, current, earlier)
        if why:
            return tuple(prefix), why
        prefix.append(step)
    return tuple(prefix), ""


def _best(
    steps: Sequence[str], current: Current, candidates: Sequence[Earlier]
) -> tuple[tuple[str, ...], Earlier | None, str]:
    """The run giving the longest reusable prefix of ``steps`` (the newest on ties), and why it stops there.

    When no run gives any step, the reason is the newest run's.
    """
    if not candidates:
        return (), None, "there is no earlier run"
    found = [(*_reusable_prefix(steps, current, earlier), earlier) for earlier in candidates]
    prefix, why, source = max(found, key=lambda item: len(item[0]))  # max keeps the first (newest) of equals
    return (prefix, source, why) if prefix else ((), None, found[0][1])


def plan(
    selected: Sequence[str],
    only: bool,
    current: Current,
    candidates: Sequence[Earlier],
    force: bool = False,
    local_spark_dir: bool = True,
) -> Plan:
    """Decide what to reuse and what to run.

    Without ``--only`` (``only=False``) every step is selected and the longest compatible prefix is reused.
    With ``--only`` the selected steps run; the steps before them are reused when a selected step needs
    them (``needs``), and it is an error when they cannot be.
    """
    steps = artifacts.STEPS
    # Steps that write nothing (the dashboard check) are never reused: they check the new run directory.
    producing = [s for s in steps if artifacts.written_by(s)]
    if not only:
        if force:
            return Plan((), None, tuple(steps), "--force")
        if not local_spark_dir:
            return Plan((), None, tuple(steps), "spark_dir is a URL, and datasets there are not linked")
        prefix, source, why = _best(producing, current, candidates)
        return Plan(prefix, source, tuple(s for s in steps if s not in prefix), why)
    required = {n for s in selected for n in needs(s, current.parameters[s])} - set(selected)
    if not required:
        return Plan((), None, tuple(selected))
    upstream = [s for s in steps[: steps.index(selected[0])] if s in producing]
    gaps = sorted(required - set(upstream))
    if gaps:
        raise ReuseError(
            f"--only {' '.join(selected)} also needs {', '.join(gaps)}, which comes after a "
            f"selected step: add it to --only, or run without --only."
        )
    hints = "".join(f", or set {INDEPENDENT_WITH[s]}" for s in selected if s in INDEPENDENT_WITH)
    wanted = f"--only {' '.join(selected)} needs the outputs of {', '.join(upstream)}"
    if force:
        raise ReuseError(f"{wanted}, and --force reuses nothing. Fix: run without --only{hints}.")
    if not local_spark_dir:
        raise ReuseError(
            f"{wanted} from an earlier run, but spark_dir is a URL and datasets there are not "
            f"reused. Fix: run without --only{hints}."
        )
    prefix, source, why = _best(upstream, current, candidates)
    if len(prefix) < len(upstream):
        raise ReuseError(
            f"{wanted} from an earlier run with the same input, parameters and code, and none has "
            f"them ({why}). Fix: run without --only{hints}."
        )
    return Plan(prefix, source, tuple(selected))


def link_tree(source: Path, target: Path) -> str:
    """Hard-link every file of ``source`` into ``target`` (a symlink where that fails); return the method."""
    source = source.resolve()
    if target.exists() or target.is_symlink():
        raise FileExistsError(f"{target} exists: a reused dataset is linked into a fresh run only")
    try:
        if source.is_dir():
            shutil.copytree(source, target, copy_function=os.link)
        else:
            os.link(source, target)
        return "hardlink"
    except OSError:
        # E.g. another file system, or one without hard links.
        shutil.rmtree(target, ignore_errors=True)
        target.symlink_to(source, target_is_directory=source.is_dir())
        return "symlink"


def materialize(plan_: Plan, run_dir: Path, spark_dir: str) -> dict[str, dict[str, Any]]:
    """Put the reused steps' artifacts into the new run; return each reused step's manifest record.

    A record keeps the earlier run's parameters, code fingerprint and figure list (so this run can be
    reused in turn), says which run executed the step (``reused_from``) and how each dataset was linked.
    """
    source = plan_.source
    source_spark = Path(source.manifest["spark_dir"]) if plan_.reused else None
    records: dict[str, dict[str, Any]] = {}
    for step in plan_.reused:
        started = time.perf_counter()
        record = {k: v for k, v in source.step(step).items() if k in ("parameters", "code", "figures")}
        linked = {}
        for artifact in artifacts.written_by(step):
            if artifact is artifacts.FIGURES:
                continue  # shared by the steps: each step's own figures are listed in its record
            if artifact.store == "run" and (source.run_dir / artifact.name).exists():
                shutil.copy2(source.run_dir / artifact.name, run_dir / artifact.name)
            elif artifact.store == "spark" and (source_spark / artifact.name).exists():
                linked[artifact.name] = link_tree(source_spark / artifact.name, Path(spark_dir) / artifact.name)
        for name in record.get("figures", []):
            target = run_dir / artifacts.FIGURES.name / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source.run_dir / artifacts.FIGURES.name / name, target)
        executed = run_dir / artifacts.EXECUTED.name / f"{step}.ipynb"
        shutil.copy2(source.run_dir / artifacts.EXECUTED.name / f"{step}.ipynb", executed)
        records[step] = {
            "status": "reused",
            "reused_from": source.origin(step),
            **record,
            "linked": linked,
            "output": str(executed),
            "seconds": round(time.perf_counter() - started, 1),
        }
    return records
