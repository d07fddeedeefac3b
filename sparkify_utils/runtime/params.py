"""Run parameters: read ``params/*.yaml`` and ``-p key=value``, and check them against the notebooks.

Papermill only warns about a parameter that a notebook does not declare, so a typo would silently
run with the default. Here every key must be declared by at least one notebook's ``parameters``
cell, and its value must have the declared default's type.
"""

from __future__ import annotations

import ast
import difflib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from sparkify_utils import paths

#: Keys the runner sets itself; a user cannot override them.
RUNNER_KEYS = ("run_dir",)


class ParamError(ValueError):
    """A parameter file or override is wrong; the message names the key and the fix."""


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read a flat YAML mapping of parameters (an empty file is an empty mapping)."""
    path = Path(path)
    if not path.is_file():
        choices = ", ".join(sorted(p.name for p in paths.PARAMS_DIR.glob("*.yaml")))
        raise ParamError(f"Parameter file {path} does not exist (files in params/: {choices}).")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamError(f"Parameter file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamError(f"Parameter file {path} must be a mapping of key: value, not {type(data).__name__}.")
    return data


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` overrides; values are read as YAML (``3`` is an int, ``[a, b]`` a list)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ParamError(f"Override {pair!r} is not of the form key=value (e.g. -p seed=7).")
        try:
            result[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            result[key.strip()] = raw
    return result


def notebook_parameters(notebook: str | Path) -> dict[str, Any]:
    """Return the names and default values of the notebook's ``parameters`` cell."""
    nb = json.loads(Path(notebook).read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParamError(f"{notebook} must have exactly one cell tagged 'parameters', found {len(cells)}.")
    source = "".join(cells[0]["source"])
    params: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            raise ParamError(f"{notebook}: the parameters cell may hold only `name = literal` lines.")
        target = node.targets[0]
        if not isinstance(target, ast.Name):
            raise ParamError(f"{notebook}: cannot read parameter assignment {ast.unparse(node)!r}.")
        try:
            params[target.id] = ast.literal_eval(node.value)
        except ValueError as exc:
            raise ParamError(f"{notebook}: parameter {target.id} must be a plain literal.") from exc
    return params


def _type_name(value: Any) -> str:
    return type(value).__name__


def _compatible(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and (isinstance(default, float) or isinstance(value, int))
    if default is None or value is None:
        return True
    return isinstance(value, type(default))


def split_by_notebook(
    params: Mapping[str, Any], declared: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Check every key against the notebooks' declarations and give each notebook its own keys.

    ``declared`` maps notebook name -> its parameters cell (name -> default).
    """
    known = {key: default for params_ in declared.values() for key, default in params_.items()}
    for key in RUNNER_KEYS:
        if key in params:
            raise ParamError(f"Parameter {key!r} is set by the runner (each run gets its own directory).")
    unknown = sorted(set(params) - set(known))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ParamError(
            f"Unknown parameter {', '.join(hints)}: no notebook declares it. "
            f"Known parameters: {', '.join(sorted(known))}."
        )
    for key, value in params.items():
        if not _compatible(known[key], value):
            raise ParamError(
                f"Parameter {key!r} must be {_type_name(known[key])} like its default "
                f"{known[key]!r}, got {_type_name(value)} {value!r}."
            )
    return {nb: {k: v for k, v in params.items() if k in decl} for nb, decl in declared.items()}
