"""Reading a VGG Image Annotator (VIA) 2.x document, project or annotation export (VIA 1.x
region dicts too), into an ``AnnotationSet``; the class comes from one region attribute."""

from __future__ import annotations

from pathlib import Path

from trainables.datasets.detection import regions as shared
from trainables.datasets.detection.types import MalformedAnnotationFileError


def parse_via(doc: dict, path: Path, class_map: shared.ClassMap, *,
              class_attribute: str | None = None) -> shared.AnnotationSet:
    """A VIA 2.x document (project or export). The class is the region attribute
    ``class_attribute``; by default the only region attribute, or else the only one whose
    values name a known class."""
    form = "VIA 2.x project" if "_via_img_metadata" in doc else "VIA annotation export"
    entries = doc.get("_via_img_metadata", doc)
    regions_by_key = {key: _via_regions(entry, path, key) for key, entry in entries.items()}
    attribute = class_attribute or _via_class_attribute(regions_by_key, path, class_map)
    images, drops, seen = [], [], set()
    for key, entry in entries.items():
        name = entry["filename"]
        if name in seen:
            drops.append((name, f"listed twice in {path.name} (key {key!r}); the first entry is used"))
            continue
        seen.add(name)
        regions, rejected = [], []
        for number, region in enumerate(regions_by_key[key]):
            item = f"{name} region {number}"
            try:
                regions.append(_via_region(region, item, attribute, class_map))
            except shared.RegionProblem as problem:
                rejected.append((item, str(problem)))
        images.append(shared.AnnotatedImage(name, shared.image_candidates(path.parent, name), tuple(regions),
                                            tuple(rejected)))
    return shared.AnnotationSet(path, form, tuple(sorted(images, key=lambda i: i.source)), tuple(drops),
                                class_attribute=attribute)


def _via_regions(entry, path: Path, key: str) -> list:
    """An entry's regions as a list (VIA 2.x writes a list, VIA 1.x a dict keyed "0", "1"...)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
        raise shared.structure_error(path, f"entry {key!r}", "has no 'filename' string")
    regions = entry.get("regions")
    if isinstance(regions, dict):
        return [regions[k] for k in sorted(regions, key=lambda k: (len(k), k))]
    if not isinstance(regions, list):
        raise shared.structure_error(path, f"entry {key!r} key 'regions'", "is missing or neither a list nor a dict")
    return regions


def _via_class_attribute(regions_by_key: dict[str, list], path: Path, class_map: shared.ClassMap) -> str | None:
    values: dict[str, set] = {}
    for regions in regions_by_key.values():
        for region in regions:
            for name, value in _region_attributes(region).items():
                values.setdefault(name, set()).update(_attribute_labels(value))
    if len(values) <= 1:
        return next(iter(values), None)
    naming = [name for name, labels in values.items() if any(class_map.knows(v) for v in labels)]
    if len(naming) == 1:
        return naming[0]
    raise MalformedAnnotationFileError(
        f"{path}: regions carry several attributes ({', '.join(sorted(values))}) and "
        f"{'several' if naming else 'none'} of them name the classes ({', '.join(class_map.class_names)}); "
        f"say which attribute holds the class (class_attribute=...)")


def _region_attributes(region) -> dict:
    attributes = region.get("region_attributes") if isinstance(region, dict) else None
    return attributes if isinstance(attributes, dict) else {}


def _attribute_labels(value) -> list[str]:
    """The labels an attribute value holds: a text/dropdown/radio string, or the ticked
    options of a checkbox attribute (a dict of option → true)."""
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, dict):
        return [option for option, ticked in value.items() if ticked]
    return []


def _via_region(region, item: str, attribute: str | None, class_map: shared.ClassMap) -> shared.Region:
    if not isinstance(region, dict) or not isinstance(region.get("shape_attributes"), dict):
        raise shared.RegionProblem("region has no 'shape_attributes' object")
    if attribute is None:
        raise shared.RegionProblem("no class label: no region of the file has any attribute")
    labels = _attribute_labels(_region_attributes(region).get(attribute))
    if len(labels) != 1:
        raise shared.RegionProblem(f"region attribute {attribute!r} holds {len(labels)} labels, not one")
    shape = region["shape_attributes"]
    if shape.get("name") == "polygon":
        geometry = {"polygons": (shared.checked_polygon(shape.get("all_points_x"), shape.get("all_points_y")),)}
    elif shape.get("name") == "rect":
        geometry = {"box": shared.checked_rect(*(shape.get(k) for k in ("x", "y", "width", "height")))}
    else:
        raise shared.RegionProblem(f"shape {shape.get('name')!r} is not supported (polygon or rect)")
    class_name = class_map.resolve(labels[0])
    if class_name is None:
        raise shared.RegionProblem(class_map.unknown(labels[0]))
    return shared.Region(item=item, class_name=class_name, **geometry)
