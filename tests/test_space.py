"""Search-space resolution, profiles, ``--set`` overrides and the source comments."""

from __future__ import annotations

import re

import pytest

from search_spaces import search_space_path
from sweeps.registry import SWEEPS, get_sweep
from sweeps.space import SearchSpaceError, parse_override, resolve

SPEC = get_sweep("bccd_imbalance")


def test_full_profile_holds_the_documents_grid():
    resolved = resolve(SPEC, profile="full")
    assert resolved.grid == {"weighted_loss": [False, True], "oversampling": [False, True],
                             "lr": [1e-4, 3e-4, 1e-3]}
    assert resolved.grid_size == 12
    assert resolved.data.image_size == 224 and resolved.fixed["pretrained"] is True
    assert resolved.fixed["max_epochs"] == 50 and resolved.fixed["batch_size"] == 32


def test_cpu_and_smoke_profiles_keep_the_grid_and_shrink_the_work():
    cpu = resolve(SPEC, profile="cpu")
    smoke = resolve(SPEC, profile="full", smoke=True)
    assert cpu.grid_size == smoke.grid_size == 12
    assert cpu.fixed["pretrained"] is False and cpu.data.image_size < 224
    assert smoke.fixed["max_epochs"] == 2 and smoke.data.images_per_split
    assert smoke.resources.gpus == 0 and smoke.asha.grace_period == 1


def test_list_override_replaces_an_axis_and_scalar_fixes_it():
    resolved = resolve(SPEC, profile="cpu", overrides=("lr=[5.0]", "weighted_loss=true"))
    assert resolved.grid["lr"] == [5.0]
    assert "weighted_loss" not in resolved.grid and resolved.fixed["weighted_loss"] is True
    assert resolved.grid_size == 2


def test_override_parses_exponent_numbers_as_floats():
    assert parse_override("lr=[1e-3,3e-4]") == ("lr", [1e-3, 3e-4])
    assert parse_override("lr=1e-3") == ("lr", 1e-3)


def test_unknown_override_key_lists_the_valid_keys():
    with pytest.raises(SearchSpaceError, match=r"--set learning_rate: unknown key; valid keys: .*\blr\b"):
        resolve(SPEC, profile="cpu", overrides=("learning_rate=0.1",))


def test_bad_override_value_fails_before_ray():
    with pytest.raises(SearchSpaceError, match="'weighted_loss' must be bool"):
        resolve(SPEC, profile="cpu", overrides=("weighted_loss=[maybe]",))
    with pytest.raises(SearchSpaceError, match="expected key=value"):
        resolve(SPEC, profile="cpu", overrides=("lr",))


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_every_search_space_value_carries_a_source_comment(name):
    lines = search_space_path(SWEEPS[name].search_space).read_text().splitlines()
    in_section = False
    uncommented = []
    for line in lines:
        if re.match(r"^(data|fixed|grid):", line):
            in_section = True
        elif re.match(r"^\S", line):
            in_section = False
        elif in_section and re.match(r"^\s+\w+:\s*\S", line) and "#" not in line:
            uncommented.append(line)
    assert uncommented == []


def test_all_unet_holds_study_6s_grid():
    resolved = resolve(get_sweep("all_unet"), profile="full")
    assert resolved.grid == {"lr": [0.0001, 0.001, 0.01, 0.1], "model": ["unet", "unet_fpn", "unet_fpn_gelu"],
                             "dropout": [0.4, 0.2, 0.0]}
    assert next(iter(resolved.grid)) == "lr", "lr must be the slowest axis so the lr 0.1 trials run last"
    assert [c["lr"] for c in resolved.configs()][-9:] == [0.1] * 9
    assert resolved.grid_size == 36
    assert (resolved.fixed["batch_size"], resolved.fixed["max_epochs"], resolved.fixed["optimizer"]) == (32, 60, "adam")
    smoke = resolve(get_sweep("all_unet"), profile="cpu", smoke=True)
    assert smoke.grid == resolved.grid
