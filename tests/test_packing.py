"""``--gpus-per-trial auto``: packing trials onto a GPU from a measured peak (no GPU, no Ray)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import ray

from sweeps import packing
from sweeps.data import SweepData
from sweeps.packing import (
    GIB,
    GpuMeasurement,
    PackingChoice,
    PackingError,
    auto_gpus_per_trial,
    calibration_configs,
    choose_gpus_per_trial,
    no_gpu_choice,
    shortened,
    small_validation,
    trial_gpu_nodes,
)
from sweeps.ray_session import NodeCapacity
from sweeps.registry import get_sweep
from sweeps.space import resolve
from trainables.classification import ClassificationConfig
from trainables.datasets.base import ClassificationData, SplitArrays
from trainables.detection import DetectionConfig
from trainables.errors import MedsweepError


def test_memory_bound_packing_keeps_the_headroom_free():
    choice = choose_gpus_per_trial(peak_bytes=int(5.1 * GIB), gpu_bytes=80 * GIB, node_cpus=64, cpus_per_trial=4)
    assert choice.trials_per_gpu == 12 and choice.gpus_per_trial == 0.0833
    assert choice.reason == ("auto: one trial peaks at 5.1 GiB of 80 GiB; 12 fit with 20% headroom, 64 CPUs allow "
                             "16 at 4 CPUs each → 0.0833 GPU per trial")


def test_cpu_bound_packing_stops_at_what_the_nodes_cpus_feed():
    choice = choose_gpus_per_trial(peak_bytes=int(5.1 * GIB), gpu_bytes=80 * GIB, node_cpus=16, cpus_per_trial=4)
    assert choice == PackingChoice(gpus_per_trial=0.25, trials_per_gpu=4, reason=(
        "auto: one trial peaks at 5.1 GiB of 80 GiB; 12 fit with 20% headroom, 16 CPUs allow 4 at 4 CPUs each "
        "→ 0.25 GPU per trial"))


def test_the_headroom_is_respected_at_the_boundary():
    """5 trials of 2 GiB fill a 10 GiB GPU exactly; 20% headroom leaves room for 4, 10% for 4.5 → 4,
    none for 5."""
    sizes = dict(peak_bytes=2 * GIB, gpu_bytes=10 * GIB, node_cpus=100, cpus_per_trial=1)
    assert choose_gpus_per_trial(**sizes).trials_per_gpu == 4
    assert choose_gpus_per_trial(**sizes, headroom=0.1).trials_per_gpu == 4
    assert choose_gpus_per_trial(**sizes, headroom=0.0).trials_per_gpu == 5


@pytest.mark.parametrize("trials", [3, 6, 7, 12])
def test_the_share_fits_as_many_times_as_trials_in_rays_units(trials):
    choice = choose_gpus_per_trial(peak_bytes=GIB, gpu_bytes=trials * GIB + GIB // 2, node_cpus=100,
                                   cpus_per_trial=1, headroom=0.0)
    assert choice.trials_per_gpu == trials
    assert round(choice.gpus_per_trial * 10_000) * trials <= 10_000


def test_a_trial_larger_than_the_gpu_is_an_error_naming_both_sizes():
    with pytest.raises(PackingError, match=r"peaks at 90.0 GiB of 80 GiB, more than the whole GPU") as caught:
        choose_gpus_per_trial(peak_bytes=90 * GIB, gpu_bytes=80 * GIB, node_cpus=16, cpus_per_trial=4)
    assert isinstance(caught.value, MedsweepError)


def test_a_trial_that_fits_only_without_the_headroom_gets_a_whole_gpu():
    choice = choose_gpus_per_trial(peak_bytes=70 * GIB, gpu_bytes=80 * GIB, node_cpus=16, cpus_per_trial=4)
    assert choice.gpus_per_trial == 1.0 and choice.trials_per_gpu == 1
    assert "it fits only without the 20% headroom" in choice.reason


def test_a_node_with_several_gpus_shares_its_cpus_among_them():
    choice = choose_gpus_per_trial(peak_bytes=GIB, gpu_bytes=80 * GIB, node_cpus=32, cpus_per_trial=4,
                                   gpus_per_node=4)
    assert choice.trials_per_gpu == 2 and choice.gpus_per_trial == 0.5
    assert "32 CPUs allow 8 at 4 CPUs each, 2 per GPU of 4" in choice.reason


@pytest.mark.parametrize("bad", [dict(peak_bytes=0), dict(cpus_per_trial=0), dict(headroom=1.0)])
def test_impossible_inputs_are_refused(bad):
    with pytest.raises(ValueError):
        choose_gpus_per_trial(**{**dict(peak_bytes=GIB, gpu_bytes=8 * GIB, node_cpus=4, cpus_per_trial=1), **bad})


def test_without_a_gpu_auto_means_no_gpu_and_calibrates_nothing(monkeypatch):
    monkeypatch.setattr(packing, "calibrate_peak_memory", lambda *a, **k: pytest.fail("calibrated without a GPU"))
    choice = auto_gpus_per_trial(object(), object(), nodes=[NodeCapacity(cpus=2, gpus=0)])
    assert choice == no_gpu_choice() and choice.gpus_per_trial == 0.0
    assert "no node has a GPU, so 0 GPUs per trial" in choice.reason


def test_auto_chooses_for_the_gpu_node_with_the_fewest_cpus_per_gpu(monkeypatch):
    resolved = resolve(get_sweep("bccd_imbalance"), profile="full")
    monkeypatch.setattr(packing, "calibrate_peak_memory",
                        lambda *a, **k: GpuMeasurement(peak_bytes=2 * GIB, gpu_bytes=80 * GIB))
    monkeypatch.setattr(ray, "nodes", lambda: [ray_node("a", cpus=64, gpus=2), ray_node("b", cpus=16, gpus=1)])
    monkeypatch.setattr(packing, "node_gpu_memory", lambda nodes: {node["NodeID"]: 80 * GIB for node in nodes})
    nodes = [NodeCapacity(cpus=8, gpus=0), NodeCapacity(cpus=64, gpus=2), NodeCapacity(cpus=16, gpus=1)]
    choice = auto_gpus_per_trial(resolved, object(), nodes=nodes)
    assert choice.trials_per_gpu == 4 and "16 CPUs allow 4 at 4 CPUs each" in choice.reason


def test_calibration_takes_one_config_per_model_at_the_grids_largest_batches():
    resolved = resolve(get_sweep("all_unet"), profile="full", overrides=("batch_size=[8,64]",))
    configs = calibration_configs(resolved)
    assert [config["model"] for config in configs] == ["unet", "unet_fpn", "unet_fpn_gelu"]
    assert {config["batch_size"] for config in configs} == {64}


def test_calibration_configs_are_cut_to_a_few_steps_of_one_epoch():
    classification = shortened({"batch_size": 16, "max_epochs": 60}, ClassificationConfig, steps=3)
    assert classification == {"batch_size": 16, "max_epochs": 1, "epoch_samples": 48}
    detection = shortened({"steps_per_epoch": 100, "validation_steps": 200}, DetectionConfig, steps=3)
    assert detection == {"steps_per_epoch": 3, "validation_steps": 2 * DetectionConfig.eval_batch_size,
                         "max_epochs": 1}


def test_calibration_validates_on_the_first_images_only():
    def split(n):
        return SplitArrays(np.zeros((n, 4, 4, 3), np.uint8), np.zeros(n, np.int64), np.arange(n).astype(str))

    data = SweepData(axis=None, variants={None: ClassificationData("d", ("a", "b"), {
        "train": split(10), "val": split(9), "test": split(5)})}, audits={None: None})
    small = small_validation(data, 4).primary
    assert sorted(small.splits) == ["train", "val"]
    assert len(small.splits["val"]) == 4 and len(small.splits["train"]) == 10


RANGES_YAML = Path(__file__).resolve().parent / "spaces" / "bccd_ranges.yaml"


def test_under_a_sampler_calibration_takes_the_top_of_a_batch_size_range():
    """Issue #19 point 1: batch_size lists 16 and 32 for the grid but ranges up to 64 for a sampler,
    so an Optuna trial can get 64 and the packing must be sized for it."""
    resolved = resolve(get_sweep("bccd_imbalance"), profile="cpu", smoke=True, path=RANGES_YAML,
                       overrides=("oversampling=[false]",))
    assert resolved.grid["batch_size"] == [16, 32] and resolved.ranges["batch_size"].bounds == (8, 64)
    assert {config["batch_size"] for config in calibration_configs(resolved)} == {32}
    sampled = dataclasses.replace(resolved, search="optuna")
    assert {config["batch_size"] for config in calibration_configs(sampled)} == {64}


def ray_node(node_id: str, *, cpus: float, gpus: float, accelerator: str | None = None,
             alive: bool = True) -> dict:
    """A node as ``ray.nodes()`` lists it (the fields packing reads)."""
    resources = {"CPU": cpus, **({"GPU": gpus} if gpus else {}),
                 **({f"accelerator_type:{accelerator}": 1.0} if accelerator else {})}
    return {"NodeID": node_id, "Alive": alive, "Resources": resources}


MIXED_CLUSTER = [ray_node("h100node", cpus=64, gpus=1, accelerator="H100"),
                 ray_node("t4node00", cpus=64, gpus=1, accelerator="T4"),
                 ray_node("cpunode0", cpus=64, gpus=0),
                 ray_node("deadnode", cpus=64, gpus=1, accelerator="K80", alive=False),
                 ray_node("fewcpus0", cpus=2, gpus=1, accelerator="P4")]
MIXED_MEMORY = {"h100node": 80 * GIB, "t4node00": 16 * GIB}


def test_trials_run_on_alive_nodes_with_a_whole_gpu_and_a_trials_cpus():
    assert [node["NodeID"] for node in trial_gpu_nodes(MIXED_CLUSTER, cpus=4)] == ["h100node", "t4node00"]


def test_auto_packs_for_the_smallest_gpu_of_the_nodes_that_can_run_trials(monkeypatch):
    """Issue #19 6d: calibrated on an 80 GiB H100, but trials also land on a 16 GiB T4: 12 trials of
    5 GiB fit the H100, 2 the T4, so the share is half a GPU. The dead node and the one with too
    few CPUs for a trial are not read."""
    resolved = resolve(get_sweep("bccd_imbalance"), profile="full")
    monkeypatch.setattr(packing, "calibrate_peak_memory",
                        lambda *a, **k: GpuMeasurement(peak_bytes=5 * GIB, gpu_bytes=80 * GIB))
    monkeypatch.setattr(ray, "nodes", lambda: MIXED_CLUSTER)
    read = []

    def node_gpu_memory(nodes):
        read.extend(node["NodeID"] for node in nodes)
        return {node["NodeID"]: MIXED_MEMORY[node["NodeID"]] for node in nodes}

    monkeypatch.setattr(packing, "node_gpu_memory", node_gpu_memory)
    nodes = [NodeCapacity(cpus=64, gpus=1, accelerator="H100"), NodeCapacity(cpus=64, gpus=1, accelerator="T4")]
    choice = auto_gpus_per_trial(resolved, object(), nodes=nodes)
    assert read == ["h100node", "t4node00"]
    assert (choice.trials_per_gpu, choice.gpus_per_trial) == (2, 0.5)
    assert choice.reason.startswith(
        "auto: one trial peaks at 5.0 GiB of 16 GiB (the smallest GPU of the 2 nodes that can run a trial: a T4 on "
        "node t4node00; calibrated on a GPU of 80 GiB); 2 fit with 20% headroom")


def test_one_gpu_node_packs_for_the_gpu_calibrated_without_reading_it_again(monkeypatch):
    resolved = resolve(get_sweep("bccd_imbalance"), profile="full")
    monkeypatch.setattr(packing, "calibrate_peak_memory",
                        lambda *a, **k: GpuMeasurement(peak_bytes=5 * GIB, gpu_bytes=80 * GIB))
    monkeypatch.setattr(ray, "nodes", lambda: MIXED_CLUSTER[:1] + MIXED_CLUSTER[2:])
    monkeypatch.setattr(packing, "node_gpu_memory", lambda nodes: pytest.fail("read a node's GPUs again"))
    choice = auto_gpus_per_trial(resolved, object(), nodes=[NodeCapacity(cpus=64, gpus=1, accelerator="H100")])
    assert choice.trials_per_gpu == 12 and "of 80 GiB; 12 fit" in choice.reason
