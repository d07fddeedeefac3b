"""Parameter files, overrides and their validation against the notebooks' parameters cells."""

from __future__ import annotations

import json

import pytest

from sparkify_utils.runtime.params import (
    ParamError,
    load_params_file,
    notebook_parameters,
    parse_overrides,
    split_by_notebook,
)

DECLARED = {
    "01_eda": {"run_dir": "", "input_path": "", "seed": 42, "spark_master": "local[*]"},
    "02_features": {"run_dir": "", "seed": 42, "horizon_days": 14, "label_mode": "whole_period"},
}


def test_overrides_are_typed_like_yaml():
    assert parse_overrides(["seed=7", "label_mode=horizon", "models=[lr, rf]", "x="]) == {
        "seed": 7,
        "label_mode": "horizon",
        "models": ["lr", "rf"],
        "x": "",
    }


def test_override_without_equals_is_an_error():
    with pytest.raises(ParamError, match="key=value"):
        parse_overrides(["seed"])


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ParamError, match=r"'horizon_dayz' \(did you mean 'horizon_days'\?\)"):
        split_by_notebook({"horizon_dayz": 3}, DECLARED)
    with pytest.raises(ParamError, match="no_such_key"):
        split_by_notebook({"no_such_key": 1}, DECLARED)


def test_wrong_type_is_an_error():
    with pytest.raises(ParamError, match="horizon_days.*int"):
        split_by_notebook({"horizon_days": "two weeks"}, DECLARED)
    # An int where a float is declared is fine, the reverse is not.
    assert split_by_notebook({"seed": 3}, DECLARED)["01_eda"]["seed"] == 3
    with pytest.raises(ParamError):
        split_by_notebook({"seed": 3.5}, DECLARED)


def test_runner_keys_cannot_be_overridden():
    with pytest.raises(ParamError, match="run_dir.*runner"):
        split_by_notebook({"run_dir": "/tmp/x"}, DECLARED)


def test_each_notebook_gets_only_its_keys():
    split = split_by_notebook({"seed": 1, "input_path": "a.json", "label_mode": "horizon"}, DECLARED)
    assert split == {
        "01_eda": {"seed": 1, "input_path": "a.json"},
        "02_features": {"seed": 1, "label_mode": "horizon"},
    }


def test_params_file_errors(tmp_path):
    with pytest.raises(ParamError, match="does not exist"):
        load_params_file(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ParamError, match="mapping"):
        load_params_file(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_params_file(empty) == {}


def _notebook(tmp_path, source, tags=("parameters",)):
    nb = {
        "cells": [{"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source, "outputs": []}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_notebook_parameters_are_read_without_a_kernel(tmp_path):
    path = _notebook(tmp_path, 'seed = 42\nmodels = ["lr", "rf"]\nconf = {"a": 1}\n# comment\n')
    assert notebook_parameters(path) == {"seed": 42, "models": ["lr", "rf"], "conf": {"a": 1}}


def test_parameters_cell_must_hold_literals(tmp_path):
    with pytest.raises(ParamError, match="plain literal"):
        notebook_parameters(_notebook(tmp_path, "seed = compute()\n"))
    with pytest.raises(ParamError, match="exactly one"):
        notebook_parameters(_notebook(tmp_path, "seed = 1\n", tags=()))
