"""The private submitit / Hydra APIs the launcher uses (all in launchers/_private.py) are still
there, with the shape the launcher relies on, in the installed versions. An upgrade that changes
one fails here, naming it."""

from __future__ import annotations

import dataclasses
import inspect
import signal
from importlib.metadata import version
from pathlib import Path

import pytest
import submitit
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf

from launchers import _private
from launchers.sweep import GENERIC, INIT_KEYS, OWN_KEYS, cluster_keys, executor_parameters


def test_the_installed_versions_are_the_tested_ones():
    installed = {name: version(name) for name in _private.TESTED_WITH}
    assert installed == _private.TESTED_WITH, (
        "launchers/_private.py was tested with other versions: re-check every private API it "
        "uses, then update TESTED_WITH and the pins in pyproject.toml"
    )


def test_pyproject_pins_the_tested_versions():
    pins = (Path(_private.__file__).resolve().parents[1] / "pyproject.toml").read_text()
    for name, ver in _private.TESTED_WITH.items():
        assert f'"{name}~={ver}"' in pins, name


def test_submitit_usr_signal_is_a_signal():
    assert callable(submitit.JobEnvironment._usr_sig), "submitit.JobEnvironment._usr_sig is gone"
    from submitit.slurm.slurm import SlurmJobEnvironment

    assert _private.usr_signal() == SlurmJobEnvironment._usr_sig()
    assert isinstance(_private.usr_signal(), signal.Signals)


def test_auto_executor_wraps_an_inner_executor_with_parameters(tmp_path):
    ex = submitit.AutoExecutor(folder=str(tmp_path), cluster="local")
    ex.update_parameters(timeout_min=5, tasks_per_node=2)
    params = _private.inner_executor(ex).parameters
    assert params["timeout_min"] == 5 and params["tasks_per_node"] == 2


def test_sbatch_text_is_built_from_the_inner_slurm_executor(tmp_path):
    from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

    taken = inspect.signature(_make_sbatch_string).parameters
    assert {"command", "folder", "map_count", "partition", "signal_delay_s"} <= set(taken)
    assert isinstance(inspect.getattr_static(SlurmExecutor, "_submitit_command_str"), property)
    with _private.without_srun_check():
        ex = submitit.AutoExecutor(folder=str(tmp_path), cluster="slurm")
    ex.update_parameters(slurm_partition="gpu", timeout_min=7)
    text = _private.sbatch_text(ex, dict(_private.inner_executor(ex).parameters))
    assert "#SBATCH --partition=gpu" in text and "#SBATCH --time=7" in text


def test_hydra_sweep_expansion_and_app_construction():
    parsed = OverridesParser.create().parse_overrides(["a=1,2", "b=x,y"])
    jobs = _private.expand_sweep(parsed)
    assert sorted(jobs) == [["a=1", "b=x"], ["a=1", "b=y"], ["a=2", "b=x"], ["a=2", "b=y"]]
    assert callable(_private.Hydra.create_main_hydra2)
    assert (
        "config_search_path" not in inspect.signature(_private.create_config_search_path).parameters
    )
    assert list(inspect.signature(_private.Callbacks).parameters)[:1] == ["config"]


def test_routed_keys_come_from_the_upstream_dataclasses():
    base = {f.name for f in dataclasses.fields(BaseQueueConf)}
    slurm = {f.name for f in dataclasses.fields(SlurmQueueConf)}
    assert GENERIC == base - INIT_KEYS
    assert slurm - base - {"_target_", "max_num_timeout"} <= cluster_keys("slurm")
    assert {"max_requeues", "stop_check_every", "skip_done", "poll_s"} <= OWN_KEYS
    routed = executor_parameters(
        "slurm", {"partition": "gpu", "timeout_min": 9, "max_requeues": 2, "qos": None}
    )
    assert routed == {"slurm_partition": "gpu", "timeout_min": 9}


def test_an_unknown_launcher_key_is_refused_naming_the_parameters():
    with pytest.raises(
        ValueError, match=r"hydra\.launcher\.python is not a parameter of the slurm"
    ):
        executor_parameters("slurm", {"python": "/usr/bin/python3"})
