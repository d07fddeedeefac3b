"""What a run records about itself: the input's fingerprint, the versions and git commit behind it,
its parameters with secrets masked, and the atomic JSON write of its manifest.

The runner writes these into ``manifest.json``; the reuse of earlier runs compares them.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from sparkify_utils import paths

#: Inputs up to this size are hashed in full; larger ones are fingerprinted from samples.
FULL_HASH_LIMIT = 1 << 30
_SAMPLE = 1 << 20
_VERSIONED = (
    "sparkify-churn",
    "pyspark",
    "pandas",
    "numpy",
    "pyarrow",
    "scipy",
    "papermill",
    "nbclient",
    "ipykernel",
    "plotly",
    "voila",
    "ipywidgets",
    "pyyaml",
)


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


def git_commit() -> dict[str, Any]:
    """The project's git commit and whether the work tree had uncommitted changes."""

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
    # The JVM announces JAVA_TOOL_OPTIONS / _JAVA_OPTIONS before its version.
    lines = [line for line in java.stderr.splitlines() if not line.startswith("Picked up ")]
    versions["java"] = (lines or [None])[0]
    return versions


def redact(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters safe to record: access tokens in a Spark Connect URL are masked."""
    return {k: re.sub(r"(token=)[^;]*", r"\1***", v) if isinstance(v, str) else v for k, v in params.items()}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON atomically (a reader sees the old or the new file, never half of one)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
