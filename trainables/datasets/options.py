"""Each dataset's own options: a frozen dataclass per dataset, registered with the dataset (its
``DatasetEntry.options``), whose fields are exactly the keywords the dataset's ``prepare``
takes besides ``data_dir``, ``image_size`` and ``use_cache``.

Options validate themselves on construction as trial configs do (``from_config``): every field
is type-checked (``check_field_types``), then each class checks its ranges in ``__post_init__``
after calling ``super().__post_init__()``; errors are ``ConfigError``s naming the key. A data
section's keys are turned into options by ``sweeps.space.DataSettings.from_mapping``, which
refuses a key the dataset's class does not declare, listing the ones it does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trainables.config import check_field_types, require_choice
from trainables.datasets.leakage_policy import LEAKAGE_POLICIES


@dataclass(frozen=True)
class DatasetOptions:
    """The base of every dataset's options: a dataset with none uses it as it is."""

    def __post_init__(self) -> None:
        check_field_types(self, label="data setting")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def keywords(self) -> dict[str, Any]:
        """The keywords for the dataset's ``prepare``, one per field."""
        return {key: getattr(self, key) for key in self.keys()}


@dataclass(frozen=True)
class LeakageOptions(DatasetOptions):
    """The options of a dataset whose preparation applies a duplicate (leakage) policy."""

    leakage: str | None = None     # warn, group, drop or fail; None: the dataset's default

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.leakage is not None:
            require_choice("leakage", self.leakage, LEAKAGE_POLICIES)

