"""Pascal VOC reader: image-level split lists and XML boxes, with every problem audited."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from trainables.errors import MedsweepError


class MalformedAnnotationError(MedsweepError, ValueError):
    """An XML annotation that cannot be parsed or lacks required fields."""


class MissingSplitListError(MedsweepError, FileNotFoundError):
    """A split list (``ImageSets/Main/<split>.txt``) that does not exist."""


@dataclass(frozen=True)
class VocBox:
    class_name: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int

    @property
    def area(self) -> int:
        return max(0, self.xmax - self.xmin) * max(0, self.ymax - self.ymin)

    def shape_problem(self) -> str | None:
        """Why the box encloses no pixel, or None: an inverted box (a minimum above its
        maximum, usually swapped coordinates) is told apart from a truly zero-area one."""
        inverted = [f"{low} > {high}" for low, high, a, b in (("xmin", "xmax", self.xmin, self.xmax),
                                                              ("ymin", "ymax", self.ymin, self.ymax)) if a > b]
        if inverted:
            return f"inverted box ({', '.join(inverted)})"
        return "zero-area box" if self.area == 0 else None

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.xmin, self.ymin, self.xmax, self.ymax

    def inside(self, width: int, height: int) -> bool:
        return 0 <= self.xmin and 0 <= self.ymin and self.xmax <= width and self.ymax <= height


@dataclass(frozen=True)
class VocAnnotation:
    filename: str
    width: int
    height: int
    boxes: tuple[VocBox, ...]


def read_split_list(root: Path, split: str) -> list[str]:
    """Image ids listed in ``ImageSets/Main/<split>.txt``, in file order, without blanks."""
    path = root / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise MissingSplitListError(
            f"split list {path} is missing: a VOC dataset needs ImageSets/Main/{split}.txt "
            f"naming one image id per line")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def parse_annotation(path: Path) -> VocAnnotation:
    """Parse one VOC XML file with defusedxml (entity expansion and external refs refused)."""
    try:
        root = SafeET.parse(path).getroot()
        size = root.find("size")
        boxes = tuple(_parse_object(obj) for obj in root.findall("object"))
        return VocAnnotation(filename=(root.findtext("filename") or "").strip(),
                             width=int(size.findtext("width")), height=int(size.findtext("height")),
                             boxes=boxes)
    except (ParseError, DefusedXmlException) as exc:
        raise MalformedAnnotationError(f"{path}: not valid or not safe XML ({exc})") from exc
    except (AttributeError, TypeError, ValueError) as exc:
        raise MalformedAnnotationError(
            f"{path}: missing or non-numeric size/object/bndbox field ({exc})") from exc


def _parse_object(obj) -> VocBox:
    box = obj.find("bndbox")
    coords = [int(round(float(box.findtext(k)))) for k in ("xmin", "ymin", "xmax", "ymax")]
    return VocBox(obj.findtext("name").strip(), *coords)
