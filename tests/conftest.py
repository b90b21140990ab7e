"""Shared fixtures: the real BCCD copy, small copies of the real Taleqani images, a private cache,
generated VOC data, one Ray instance."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep decoded-patch caches and downloads of the test session out of the user's cache."""
    previous = os.environ.get("MEDSWEEP_CACHE_DIR")
    os.environ["MEDSWEEP_CACHE_DIR"] = str(tmp_path_factory.mktemp("medsweep-cache"))
    yield
    if previous is None:
        os.environ.pop("MEDSWEEP_CACHE_DIR", None)
    else:
        os.environ["MEDSWEEP_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The directory holding the real ``BCCD_Dataset/`` (``MEDSWEEP_DATA_DIR``; never copied)."""
    configured = os.environ.get("MEDSWEEP_DATA_DIR")
    path = Path(configured) if configured else REPO.parent / "shared" / "data"
    if not (path / "BCCD_Dataset" / "BCCD").is_dir():
        pytest.fail(f"real BCCD data not found at {path}; set MEDSWEEP_DATA_DIR to the directory "
                    f"holding BCCD_Dataset/ (for example ../shared/data)")
    return path.resolve()


TALEQANI_CLASSES = ("Benign", "Early", "Pre", "Pro")


def real_taleqani_root() -> Path:
    """The real ``ALL_Taleqani/`` copy beside the repository (or under ``MEDSWEEP_DATA_DIR``);
    the calling test is skipped, saying where it looked, when it is absent."""
    configured = os.environ.get("MEDSWEEP_DATA_DIR")
    base = Path(configured) if configured else REPO.parent / "shared" / "data"
    root = base / "ALL_Taleqani"
    if not all((root / side / name).is_dir() for side in ("Original", "Segmented") for name in TALEQANI_CLASSES):
        pytest.skip(f"the real Taleqani ALL images are not at {root} (Original/ and Segmented/ with "
                    f"{', '.join(TALEQANI_CLASSES)}); set MEDSWEEP_DATA_DIR to the folder holding ALL_Taleqani/")
    return root.resolve()


def copy_real_taleqani(target: Path, *, per_class: int, every: int = 37) -> Path:
    """``per_class`` real Original/Segmented pairs of each class copied into ``target`` (never
    into the repository), taking every ``every``-th file so neighbouring frames of one smear
    are not all chosen; returns ``target``."""
    root = real_taleqani_root()
    for name in TALEQANI_CLASSES:
        chosen = sorted((root / "Original" / name).glob("*.jpg"))[::every][:per_class]
        for original in chosen:
            for side in ("Original", "Segmented"):
                destination = target / side / name / original.name
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / side / name / original.name, destination)
    return target


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (2 CPUs, no dashboard)."""
    import ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def smoke_sweep(ray_session, shared_data_dir, tmp_path_factory):
    """The bccd_imbalance smoke sweep, run once per test session on the real data."""
    from sweeps.sweep import SweepOptions, run_sweep
    storage = tmp_path_factory.mktemp("runs")
    return run_sweep(SweepOptions(name="bccd_imbalance", smoke=True, storage=str(storage),
                                  data_dir=str(shared_data_dir)))


def write_jpeg(path: Path, size=(64, 48), seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)


def voc_xml(filename: str, boxes: list[tuple[str, int, int, int, int]], size=(64, 48)) -> str:
    objects = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>" for name, x0, y0, x1, y1 in boxes)
    return (f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{objects}</annotation>")


def make_voc(root: Path, images: dict[str, dict]) -> Path:
    """A VOC tree under ``root``: ``images`` maps id → {split, boxes, xml?, jpeg_bytes?}."""
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for number, (image_id, spec) in enumerate(images.items()):
        splits[spec.get("split", "train")].append(image_id)
        if spec.get("xml", "") is not None:
            xml = spec.get("xml") or voc_xml(f"{image_id}.jpg", spec.get("boxes", []))
            (root / "Annotations" / f"{image_id}.xml").write_text(xml)
        if "jpeg_bytes" in spec:
            if spec["jpeg_bytes"] is not None:
                (root / "JPEGImages" / f"{image_id}.jpg").write_bytes(spec["jpeg_bytes"])
        else:
            write_jpeg(root / "JPEGImages" / f"{image_id}.jpg", seed=number)
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def assert_same_data(data, cached) -> None:
    """Two ClassificationData hold the same fingerprint and, split by split, the same arrays."""
    assert cached.fingerprint == data.fingerprint
    for name, split in data.splits.items():
        assert np.array_equal(split.images, cached.splits[name].images)
        assert np.array_equal(split.labels, cached.splits[name].labels)
        assert list(split.sources) == list(cached.splits[name].sources)


GPU_SKIP_REASON = "needs a CUDA GPU (run `pytest -m gpu` on a GPU machine)"


CLUSTER_SKIP_REASON = "starts a real Slurm, sshd or Ray cluster as root: run `make test-cluster`"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run only where PyTorch sees a CUDA device; elsewhere they are
    skipped, saying how to run them (``pytest -m gpu`` selects exactly these). Tests marked
    ``cluster`` run only when selected with ``-m cluster`` (``make test-cluster``)."""
    if "cluster" not in (config.option.markexpr or ""):
        skip_cluster = pytest.mark.skip(reason=CLUSTER_SKIP_REASON)
        for item in items:
            if item.get_closest_marker("cluster"):
                item.add_marker(skip_cluster)
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=GPU_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)
