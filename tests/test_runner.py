"""The runner: run-directory layout, manifest, reuse of earlier runs, failures, interrupts and ``latest``.

Notebook execution is replaced by a fake here so these tests take milliseconds; the real
papermill sequence is exercised in test_sequence.py.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import time
from importlib import metadata
from pathlib import Path

import pytest

from sparkify_utils import artifacts, paths
from sparkify_utils.runtime import record, reuse, runner
from sparkify_utils.runtime.params import ParamError
from sparkify_utils.runtime.session import DEBUGGING_KEY, LOCAL_SHUFFLE_PARTITIONS, session_conf

STEPS = ("01_eda", "02_features")


def write_notebook(path: Path, source: str, extra_code: str = "") -> None:
    """A notebook with a parameters cell (and optionally one more code cell)."""
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": source}]
    if extra_code:
        cells.append({"cell_type": "code", "metadata": {}, "source": extra_code})
    for cell in cells:
        cell.update(outputs=[], execution_count=None)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fake project: two notebooks with parameters cells, a params file and an input log."""
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write_notebook(nbs / "01_eda.ipynb", 'run_dir = ""\nspark_dir = ""\ninput_path = ""\nseed = 42\n')
    write_notebook(nbs / "02_features.ipynb", 'run_dir = ""\nspark_dir = ""\nseed = 42\nhorizon_days = 14\n')
    params = tmp_path / "params"
    params.mkdir()
    (params / "default.yaml").write_text("seed: 42\ninput_path: log.json\n")
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", nbs)
    monkeypatch.setattr(paths, "PARAMS_DIR", params)
    monkeypatch.setattr(artifacts, "STEPS", STEPS)
    monkeypatch.setenv("SPARKIFY_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("SPARKIFY_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "log.json").write_text('{"ts": 1}\n')
    return tmp_path


class FakeExecute:
    """Records calls and writes what the registry says each step writes; fails or is interrupted on request."""

    def __init__(self, fail_on: str | None = None, interrupt_on: str | None = None, terminate_on: str | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.fail_on = fail_on
        self.interrupt_on = interrupt_on
        self.terminate_on = terminate_on

    def __call__(self, notebook, output, parameters, timeout):
        step = notebook.stem
        self.calls.append((step, parameters))
        output.write_text("{}")
        if step == self.interrupt_on:
            raise KeyboardInterrupt
        if step == self.terminate_on:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or `timeout` would
            time.sleep(5)  # the handler raises at the next bytecode, long before this ends
        if step == self.fail_on:
            error = RuntimeError("boom")
            error.exec_count, error.ename, error.evalue = 3, "ValueError", "bad things"
            raise error
        layout = paths.run_paths(parameters["run_dir"], parameters.get("spark_dir", ""))
        for artifact in artifacts.written_by(step):
            if artifact is artifacts.FIGURES:
                (layout.figures / f"{step}.html").write_text(step)
            elif artifact.store == "run":
                layout.file(artifact).write_text(f"{step} {parameters}")
            elif not paths.is_url(layout.spark_dir):
                folder = Path(layout.dataset(artifact))
                folder.mkdir(parents=True)
                (folder / "part-0.parquet").write_text(f"{step} {parameters}")

    def steps(self) -> list[str]:
        return [step for step, _ in self.calls]


def quiet(**kwargs) -> Path:
    """``runner.run`` without console output."""
    return runner.run(echo=lambda _: None, **kwargs)


def manifest_of(run_dir: Path) -> dict:
    return json.loads((run_dir / artifacts.MANIFEST.name).read_text())


def missing_artifacts(run_dir: Path) -> list[str]:
    """Artifacts a complete run of the fake project must hold but ``run_dir`` lacks."""
    return [a.name for a in artifacts.expected(STEPS) if not (run_dir / a.name).exists()]


def test_run_layout_manifest_and_latest(project):
    fake = FakeExecute()
    run_dir = quiet(overrides=["horizon_days=7"], execute=fake)
    assert run_dir.parent == paths.runs_dir()
    assert fake.steps() == ["01_eda", "02_features"]
    # Each notebook receives only its declared keys, plus the run directory.
    assert fake.calls[0][1] == {"seed": 42, "input_path": "log.json", "run_dir": str(run_dir)}
    assert fake.calls[1][1] == {"seed": 42, "horizon_days": 7, "run_dir": str(run_dir)}
    manifest = manifest_of(run_dir)
    assert manifest["status"] == "ok"
    assert manifest["parameters"] == {"seed": 42, "input_path": "log.json", "horizon_days": 7}
    assert set(manifest["notebooks"]) == {"01_eda", "02_features"}
    assert all(nb["status"] == "ok" and isinstance(nb["seconds"], float) for nb in manifest["notebooks"].values())
    # Effective parameters (defaults included) and the code fingerprint are what reuse compares.
    assert manifest["notebooks"]["02_features"]["parameters"] == {"spark_dir": "", "seed": 42, "horizon_days": 7}
    assert manifest["notebooks"]["01_eda"]["figures"] == ["01_eda.html"]
    assert manifest["input"]["bytes"] == 10 and len(manifest["input"]["fingerprint"]) == 64
    assert manifest["versions"]["pyspark"] == metadata.version("pyspark")
    assert manifest["versions"]["python"] == platform.python_version()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.PROJECT_ROOT, capture_output=True, text=True)
    assert manifest["git"]["commit"] == (head.stdout.strip() or None)
    assert paths.latest_link().resolve() == run_dir.resolve()
    assert not missing_artifacts(run_dir)


def test_unknown_parameter_fails_before_anything_runs(project):
    fake = FakeExecute()
    with pytest.raises(ParamError, match="no_such_key"):
        quiet(overrides=["no_such_key=1"], execute=fake)
    assert fake.calls == []
    assert not paths.runs_dir().exists()


def test_failure_names_notebook_and_cell_and_keeps_latest(project):
    good = quiet(execute=FakeExecute())
    with pytest.raises(runner.RunError) as info:
        quiet(overrides=["horizon_days=3"], execute=FakeExecute(fail_on="02_features"))
    message = str(info.value)
    assert "02_features" in message and "cell [3]" in message and "ValueError: bad things" in message
    (failed,) = [p for p in paths.runs_dir().iterdir() if p != good]
    assert str(failed / artifacts.EXECUTED.name / "02_features.ipynb") in message
    manifest = manifest_of(failed)
    assert manifest["status"] == "failed" and manifest["notebooks"]["02_features"]["status"] == "failed"
    assert manifest["notebooks"]["01_eda"]["status"] == "reused"
    assert paths.latest_link().resolve() == good.resolve()


@pytest.mark.parametrize("how", ["interrupt_on", "terminate_on"])
def test_interrupt_marks_the_run_and_the_running_notebook(project, how):
    good = quiet(execute=FakeExecute())
    fake = FakeExecute(**{how: "02_features"})
    with pytest.raises(runner.RunInterrupted, match="during 02_features.*latest is unchanged"):
        quiet(overrides=["horizon_days=3"], execute=fake)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the run restores the SIGTERM handler"
    (stopped,) = [p for p in paths.runs_dir().iterdir() if p != good]
    manifest = manifest_of(stopped)
    assert manifest["status"] == "interrupted"
    assert manifest["notebooks"]["02_features"]["status"] == "interrupted"
    assert paths.latest_link().resolve() == good.resolve()


def test_only_runs_the_selected_step_on_an_earlier_runs_upstream(project):
    with pytest.raises(runner.RunError, match="--only 02_features needs the outputs of 01_eda.*there is no earlier"):
        quiet(only=["02"], execute=FakeExecute())
    assert not paths.runs_dir().exists(), "a refused --only creates no run"
    first = quiet(execute=FakeExecute())
    fake = FakeExecute()
    run_dir = quiet(only=["02"], execute=fake)
    assert fake.steps() == ["02_features"]
    manifest = manifest_of(run_dir)
    assert manifest["notebooks"]["01_eda"]["status"] == "reused"
    assert manifest["notebooks"]["01_eda"]["reused_from"] == first.name
    assert not missing_artifacts(run_dir)
    with pytest.raises(ParamError, match="matches 0 notebooks"):
        runner.select_notebooks(["05_nope"])


def test_only_refuses_an_incompatible_upstream(project):
    quiet(execute=FakeExecute())
    with pytest.raises(runner.RunError, match="parameter seed of 01_eda is 7 .*: 42"):
        quiet(only=["02"], overrides=["seed=7"], execute=FakeExecute())
    with pytest.raises(runner.RunError, match="--force reuses nothing"):
        quiet(only=["02"], force=True, execute=FakeExecute())


def test_changed_downstream_parameter_reuses_upstream_steps(project):
    first = quiet(execute=FakeExecute())
    fake, lines = FakeExecute(), []
    second = runner.run(overrides=["horizon_days=7"], execute=fake, echo=lines.append)
    assert fake.steps() == ["02_features"]
    assert f"01_eda reused from run {first.name} (same input, parameters and code); running 02_features" in lines[1]
    assert "parameter horizon_days of 02_features is 7" in lines[1]
    manifest = manifest_of(second)
    assert manifest["reuse"] == {"from": first.name, "steps": ["01_eda"], "message": lines[1]}
    eda = manifest["notebooks"]["01_eda"]
    assert eda["status"] == "reused" and eda["reused_from"] == first.name
    assert eda["code"] == manifest_of(first)["notebooks"]["01_eda"]["code"]
    # The new run is whole: every artifact, the executed notebook, 01's figures; datasets linked, not copied.
    assert not missing_artifacts(second)
    assert (second / artifacts.EXECUTED.name / "01_eda.ipynb").is_file()
    assert (second / artifacts.FIGURES.name / "01_eda.html").is_file()
    eda_datasets = [a.name for a in artifacts.written_by("01_eda") if a.store == "spark"]
    assert eda["linked"] == dict.fromkeys(eda_datasets, "hardlink")
    part = f"{artifacts.EVENTS.name}/part-0.parquet"
    assert os.stat(second / part).st_ino == os.stat(first / part).st_ino
    quality = artifacts.DATA_QUALITY.name
    assert (second / quality).read_text() == (first / quality).read_text()
    assert paths.latest_link().resolve() == second.resolve()


def test_unchanged_rerun_reuses_every_step(project):
    first = quiet(execute=FakeExecute())
    fake = FakeExecute()
    second = quiet(execute=fake)
    assert fake.calls == []
    assert {nb["status"] for nb in manifest_of(second)["notebooks"].values()} == {"reused"}
    assert not missing_artifacts(second)
    assert paths.latest_link().resolve() == second.resolve()
    assert manifest_of(second)["reuse"]["from"] == first.name


@pytest.mark.parametrize("change", ["input", "upstream parameter", "code", "force"])
def test_reuse_is_refused_when_something_upstream_changed(project, change):
    quiet(execute=FakeExecute())
    kwargs, expected = (
        {},
        {
            "input": "the input differs",
            "upstream parameter": "parameter seed of 01_eda is 7",
            "code": "the code of 01_eda",
            "force": "--force",
        }[change],
    )
    if change == "input":
        (project / "data" / "log.json").write_text('{"ts": 2}\n')
    elif change == "upstream parameter":
        kwargs["overrides"] = ["seed=7"]
    elif change == "code":
        nb = project / "notebooks" / "01_eda.ipynb"
        write_notebook(nb, 'run_dir = ""\nspark_dir = ""\ninput_path = ""\nseed = 42\n', extra_code="x = 1")
    else:
        kwargs["force"] = True
    fake, lines = FakeExecute(), []
    run_dir = runner.run(execute=fake, echo=lines.append, **kwargs)
    assert fake.steps() == list(STEPS)
    assert lines[1].startswith("Nothing reused (") and expected in lines[1]
    assert manifest_of(run_dir)["reuse"]["steps"] == []


def test_reuse_picks_the_longest_compatible_prefix_then_the_newest(project):
    a = quiet(execute=FakeExecute())
    b = quiet(overrides=["horizon_days=7"], execute=FakeExecute())  # 01 from a, its own 02
    c = quiet(execute=FakeExecute())  # both from a: b's 02 differs
    assert manifest_of(c)["reuse"]["from"] == a.name
    fake = FakeExecute()
    d = quiet(overrides=["horizon_days=7"], execute=fake)
    assert fake.calls == []
    steps = manifest_of(d)["notebooks"]
    # Taken from b (the newest run that has both); 01_eda was executed by a.
    assert manifest_of(d)["reuse"]["from"] == b.name
    assert steps["01_eda"]["reused_from"] == a.name and steps["02_features"]["reused_from"] == b.name
    assert not missing_artifacts(d)


def test_partially_successful_run_provides_its_finished_steps(project):
    with pytest.raises(runner.RunError):
        quiet(execute=FakeExecute(fail_on="02_features"))
    (failed_run,) = paths.runs_dir().iterdir()
    fake = FakeExecute()
    run_dir = quiet(execute=fake)
    assert fake.steps() == ["02_features"]
    assert manifest_of(run_dir)["notebooks"]["01_eda"]["reused_from"] == failed_run.name


def test_local_spark_dir_is_linked_and_a_url_spark_dir_reuses_nothing(project, tmp_path):
    shared = tmp_path / "spark"
    first = quiet(overrides=[f"spark_dir={shared}"], execute=FakeExecute())
    second = quiet(overrides=[f"spark_dir={shared}", "horizon_days=7"], execute=FakeExecute())
    assert manifest_of(second)["spark_dir"] == str(shared / second.name)
    part = f"{artifacts.EVENTS.name}/part-0.parquet"
    assert os.stat(shared / second.name / part).st_ino == os.stat(shared / first.name / part).st_ino
    fake, lines = FakeExecute(), []
    runner.run(overrides=["spark_dir=s3a://bucket/sparkify"], execute=fake, echo=lines.append)
    assert fake.steps() == list(STEPS) and "spark_dir is a URL" in lines[1]


def test_link_tree_falls_back_to_a_symlink(tmp_path, monkeypatch):
    source = tmp_path / "a" / "events.parquet"
    source.mkdir(parents=True)
    (source / "part-0.parquet").write_text("x")
    assert reuse.link_tree(source, tmp_path / "hard") == "hardlink"
    assert not (tmp_path / "hard").is_symlink()

    def no_hard_links(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_hard_links)
    assert reuse.link_tree(source, tmp_path / "soft") == "symlink"
    assert (tmp_path / "soft").is_symlink() and (tmp_path / "soft" / "part-0.parquet").read_text() == "x"


def test_code_fingerprint_follows_the_imports_of_each_step():
    files = {
        str(p.relative_to(paths.PROJECT_ROOT))
        for p in reuse.code_files(["from sparkify_utils.data.ingest import ingest_events"])
    }
    # Directly and transitively imported modules (ingest -> read -> schema), and the packages' __init__.
    assert {
        "sparkify_utils/data/ingest.py",
        "sparkify_utils/data/read.py",
        "sparkify_utils/data/schema.py",
        "sparkify_utils/__init__.py",
        "sparkify_utils/data/__init__.py",
    } <= files
    assert "sparkify_utils/modeling/compare.py" not in files
    # A cell that is not plain Python (a magic) could import anything: then the whole package counts.
    every = reuse.code_files(["%time import x"])
    assert len(every) == len(list((paths.PROJECT_ROOT / "sparkify_utils").rglob("*.py")))


def test_missing_input_is_a_clear_error(project):
    with pytest.raises(runner.RunError, match="missing.json does not exist.*input_path"):
        quiet(overrides=["input_path=missing.json"], execute=FakeExecute())


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
    first = record.fingerprint_input(str(log))
    log.write_text("b\n")
    assert record.fingerprint_input(str(log))["fingerprint"] != first["fingerprint"]
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "part-0.json").write_text("x\n")
    (parts / "_SUCCESS").write_text("")
    info = record.fingerprint_input(str(parts))
    assert info["files"] == 1 and info["bytes"] == 2
    assert record.fingerprint_input("s3a://bucket/log")["fingerprint"] is None


def test_shared_spark_dir_gets_one_folder_per_run(project):
    fake = FakeExecute()
    run_dir = quiet(overrides=["spark_dir=s3a://bucket/sparkify/"], execute=fake)
    assert fake.calls[1][1]["spark_dir"] == f"s3a://bucket/sparkify/{run_dir.name}"


def test_tokens_are_not_recorded():
    params = {"spark_master": "sc://host:443/;token=SECRET;x-cluster-id=1", "seed": 1}
    assert record.redact(params) == {"spark_master": "sc://host:443/;token=***;x-cluster-id=1", "seed": 1}


def test_java_version_is_recorded_whatever_the_jvm_options(monkeypatch):
    # The suite's JVMs run with JAVA_TOOL_OPTIONS, which java announces before its version.
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-XX:+UseSerialGC")
    java = record.environment_versions()["java"]
    assert "version" in java and not java.startswith("Picked up")


def test_quick_start_jvm_only_for_a_small_local_input_and_never_over_the_users_options(monkeypatch):
    small, large = runner.QUICK_JVM_MAX_BYTES, runner.QUICK_JVM_MAX_BYTES + 1
    monkeypatch.setattr(runner, "archive_options", lambda: "")  # no class archive built
    assert runner.server_jvm_options(small, {}) == runner.QUICK_JVM_OPTIONS
    assert runner.server_jvm_options(large, {}) == ""  # the full log keeps the JVM's optimising compiler
    assert runner.server_jvm_options(None, {}) == ""  # a remote input's size is unknown
    assert runner.server_jvm_options(small, {"spark.driver.extraJavaOptions": "-Xss4m"}) == ""
    monkeypatch.setattr(runner, "archive_options", lambda: "-XX:SharedArchiveFile=a.jsa")
    assert runner.server_jvm_options(small, {}) == f"{runner.QUICK_JVM_OPTIONS} -XX:SharedArchiveFile=a.jsa"
    assert runner.server_jvm_options(large, {}) == "-XX:SharedArchiveFile=a.jsa"  # any size starts faster with it
    assert runner.server_jvm_options(small, {"spark.driver.extraJavaOptions": "-Xss4m"}) == ""


def test_a_small_local_input_gets_two_shuffle_partitions_per_core_unless_the_user_sets_them():
    small, large = runner.QUICK_JVM_MAX_BYTES, runner.QUICK_JVM_MAX_BYTES + 1
    assert runner.run_shuffle_partitions("local[2]", small, {}) == 4
    assert runner.run_shuffle_partitions("local", small, {}) == 2
    assert runner.run_shuffle_partitions("local[*]", small, {}) == 2 * os.cpu_count()
    assert runner.run_shuffle_partitions("local[3, 2]", small, {}) == 6  # local[threads, maxFailures]
    assert runner.run_shuffle_partitions("local[2]", large, {}) == LOCAL_SHUFFLE_PARTITIONS
    assert runner.run_shuffle_partitions("local[2]", None, {}) == LOCAL_SHUFFLE_PARTITIONS
    assert runner.run_shuffle_partitions("local[2]", small, {"spark.sql.shuffle.partitions": 7}) == 7


def test_a_notebook_on_the_runs_server_keeps_the_servers_shuffle_partitions():
    partitions = "spark.sql.shuffle.partitions"
    assert session_conf("local[*]")[partitions] == str(LOCAL_SHUFFLE_PARTITIONS)  # alone, as in JupyterLab
    assert partitions not in session_conf("local[*]", attached=True)
    assert partitions not in session_conf("yarn")  # the cluster's own default
    assert session_conf("local[*]", 8, attached=True)[partitions] == "8"
    assert session_conf("local[*]", spark_conf={partitions: 5}, attached=True)[partitions] == "5"


def test_sessions_leave_out_pysparks_call_sites_unless_asked():
    # Recording them costs every column function several round trips to the JVM; a user can have them back.
    for conf in (session_conf("local[*]"), session_conf("local[*]", attached=True), session_conf("yarn")):
        assert conf[DEBUGGING_KEY] == "false"
    assert session_conf("local[*]", spark_conf={DEBUGGING_KEY: "true"})[DEBUGGING_KEY] == "true"


def test_the_quick_start_jvm_keeps_a_code_cache_a_whole_run_fits_in():
    # The quick compiler alone would get 48 MB, which the code Spark generates over a run filled in the suite.
    flags = subprocess.run(
        ["java", *runner.QUICK_JVM_OPTIONS.split(), "-XX:+PrintFlagsFinal", "-version"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "JAVA_TOOL_OPTIONS"},
    ).stdout
    size = next(int(line.split("=")[1].split()[0]) for line in flags.splitlines() if " ReservedCodeCacheSize " in line)
    assert size >= 240 << 20
