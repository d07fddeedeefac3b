"""The real papermill sequence on params/ci.yaml, and the command line around it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparkify_utils import artifacts, paths
from sparkify_utils.runtime.cli import main
from sparkify_utils.runtime.runner import RunError, run

pytestmark = pytest.mark.slow

def test_ci_run_produces_every_artifact(ci_run):
    missing = [a.name for a in artifacts.expected() if not (ci_run / a.name).exists()]
    assert not missing, f"missing artifacts in {ci_run}: {missing}"
    manifest = json.loads((ci_run / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    assert list(manifest["notebooks"]) == list(artifacts.STEPS)
    for name in artifacts.STEPS:
        assert (ci_run / "notebooks" / f"{name}.ipynb").is_file()
        assert manifest["notebooks"][name]["status"] == "ok"
    assert manifest["input"]["fingerprint"] and manifest["input"]["bytes"] > 0
    # Other tests may have completed runs since; latest always points at a successful one.
    latest = json.loads((paths.latest_link() / "manifest.json").read_text())
    assert latest["status"] == "ok"


def test_failing_notebook_leaves_latest_untouched(ci_run, capsys):
    empty = paths.data_dir() / "empty.json"
    empty.write_text("")
    before = paths.latest_link().resolve()
    with pytest.raises(RunError) as info:
        run(paths.PARAMS_DIR / "ci.yaml", overrides=["input_path=empty.json"], echo=lambda _: None)
    message = str(info.value)
    assert "01_eda" in message and "executed copy:" in message
    executed = message.split("executed copy: ")[1].split()[0]
    assert json.loads(Path(executed).read_text())["cells"], "the executed copy is a readable notebook"
    assert "empty" in message.lower()
    assert paths.latest_link().resolve() == before


def test_cli_rejects_unknown_parameter(capsys):
    assert main(["run", "-p", "no_such_key=1"]) == 2
    err = capsys.readouterr().err
    assert "no_such_key" in err and "Known parameters" in err
