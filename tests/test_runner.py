"""The runner: run-directory layout, manifest, failure handling and the atomic ``latest`` link.

Notebook execution is replaced by a fake here so these tests take milliseconds; the real
papermill sequence is exercised in test_sequence.py.
"""

from __future__ import annotations

import json
import os

import pytest

from sparkify_utils import artifacts, paths
from sparkify_utils.runtime import runner
from sparkify_utils.runtime.params import ParamError


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fake project: two notebooks with parameters cells, a params file and an input log."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for name, source in {"01_eda": 'run_dir = ""\ninput_path = ""\nseed = 42\n',
                         "02_features": 'run_dir = ""\nspark_dir = ""\nseed = 42\nhorizon_days = 14\n'}.items():
        nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": source,
                         "outputs": [], "execution_count": None}],
              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        (nbs / f"{name}.ipynb").write_text(json.dumps(nb))
    params = tmp_path / "params"
    params.mkdir()
    (params / "default.yaml").write_text("seed: 42\ninput_path: log.json\n")
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", nbs)
    monkeypatch.setattr(paths, "PARAMS_DIR", params)
    monkeypatch.setattr(artifacts, "STEPS", ("01_eda", "02_features"))
    monkeypatch.setenv("SPARKIFY_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("SPARKIFY_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "log.json").write_text('{"ts": 1}\n')
    return tmp_path


class FakeExecute:
    """Records calls and writes an executed copy; fails on the named notebook."""

    def __init__(self, fail_on: str | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.fail_on = fail_on

    def __call__(self, notebook, output, parameters, timeout):
        self.calls.append((notebook.stem, parameters))
        output.write_text("{}")
        if notebook.stem == self.fail_on:
            error = RuntimeError("boom")
            error.exec_count, error.ename, error.evalue = 3, "ValueError", "bad things"
            raise error


def test_run_layout_manifest_and_latest(project):
    fake = FakeExecute()
    run_dir = runner.run(overrides=["horizon_days=7"], execute=fake, echo=lambda _: None)
    assert run_dir.parent == paths.runs_dir()
    assert [c[0] for c in fake.calls] == ["01_eda", "02_features"]
    # Each notebook receives only its declared keys, plus the run directory.
    assert fake.calls[0][1] == {"seed": 42, "input_path": "log.json", "run_dir": str(run_dir)}
    assert fake.calls[1][1] == {"seed": 42, "horizon_days": 7, "run_dir": str(run_dir)}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    assert manifest["parameters"] == {"seed": 42, "input_path": "log.json", "horizon_days": 7}
    assert set(manifest["notebooks"]) == {"01_eda", "02_features"}
    assert all(nb["status"] == "ok" and nb["seconds"] >= 0 for nb in manifest["notebooks"].values())
    assert manifest["input"]["bytes"] == 10 and len(manifest["input"]["fingerprint"]) == 64
    assert manifest["versions"]["pyspark"] and manifest["versions"]["python"]
    assert "commit" in manifest["git"]
    assert paths.latest_link().resolve() == run_dir.resolve()


def test_unknown_parameter_fails_before_anything_runs(project):
    fake = FakeExecute()
    with pytest.raises(ParamError, match="no_such_key"):
        runner.run(overrides=["no_such_key=1"], execute=fake, echo=lambda _: None)
    assert fake.calls == []
    assert not paths.runs_dir().exists()


def test_failure_names_notebook_and_cell_and_keeps_latest(project):
    good = runner.run(execute=FakeExecute(), echo=lambda _: None)
    with pytest.raises(runner.RunError) as info:
        runner.run(execute=FakeExecute(fail_on="02_features"), echo=lambda _: None)
    message = str(info.value)
    assert "02_features" in message and "cell [3]" in message and "ValueError: bad things" in message
    (failed,) = [p for p in paths.runs_dir().iterdir() if p != good]
    assert str(failed / "notebooks" / "02_features.ipynb") in message
    manifest = json.loads((failed / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["notebooks"]["02_features"]["status"] == "failed"
    assert manifest["notebooks"]["01_eda"]["status"] == "ok"
    assert paths.latest_link().resolve() == good.resolve()


def test_only_selects_notebooks_by_prefix(project):
    fake = FakeExecute()
    runner.run(only=["02"], execute=fake, echo=lambda _: None)
    assert [c[0] for c in fake.calls] == ["02_features"]
    with pytest.raises(ParamError, match="matches 0 notebooks"):
        runner.select_notebooks(["05_nope"])


def test_missing_input_is_a_clear_error(project):
    with pytest.raises(runner.RunError, match="missing.json does not exist.*input_path"):
        runner.run(overrides=["input_path=missing.json"], execute=FakeExecute(), echo=lambda _: None)


def test_latest_switch_is_atomic_replace(project, tmp_path):
    first, second = tmp_path / "outputs/runs/a", tmp_path / "outputs/runs/b"
    first.mkdir(parents=True)
    second.mkdir()
    runner.point_latest(first)
    runner.point_latest(second)
    link = paths.latest_link()
    assert link.is_symlink() and link.resolve() == second.resolve()
    # Relative target, so the outputs folder can be moved or mounted elsewhere.
    assert not os.path.isabs(os.readlink(link))
    assert not [p for p in link.parent.iterdir() if p.name.startswith(".latest-")]


def test_fingerprint_changes_with_content(tmp_path):
    log = tmp_path / "log.json"
    log.write_text("a\n")
    first = runner.fingerprint_input(str(log))
    log.write_text("b\n")
    assert runner.fingerprint_input(str(log))["fingerprint"] != first["fingerprint"]
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "part-0.json").write_text("x\n")
    (parts / "_SUCCESS").write_text("")
    info = runner.fingerprint_input(str(parts))
    assert info["files"] == 1 and info["bytes"] == 2
    assert runner.fingerprint_input("s3a://bucket/log")["fingerprint"] is None


def test_shared_spark_dir_gets_one_folder_per_run(project):
    fake = FakeExecute()
    run_dir = runner.run(overrides=["spark_dir=s3a://bucket/sparkify/"], execute=fake, echo=lambda _: None)
    assert fake.calls[1][1]["spark_dir"] == f"s3a://bucket/sparkify/{run_dir.name}"


def test_tokens_are_not_recorded():
    params = {"spark_master": "sc://host:443/;token=SECRET;x-cluster-id=1", "seed": 1}
    assert runner.redact(params) == {"spark_master": "sc://host:443/;token=***;x-cluster-id=1", "seed": 1}
