"""Report sections, registered by name; a study file's ``report.sections`` lists the ones its report has.

Each section is a function of the ``ReportContext`` returning blocks. Sections that need a
winner (or test-split results) are skipped with a note when the experiment has none, so an
experiment where every trial failed still gets a report that says so.

Where they live: ``base`` holds the registry (``SECTIONS``, ``section``, ``render_sections``,
``validate_spec``), the ``ReportContext``, the shared number and text formatting and the
trial lookups that sections of more than one study kind use; ``common`` the sections any study
can list (summary, confirmation, checks, environment, …); ``sweep`` those about the sweep itself
(``sweep``, with parameter importance and parallel coordinates, and ``trials``), which any study
can list too; ``classification``, ``segmentation`` and ``detection`` the sections of that kind of
study. To add one, decorate a function of the ``ReportContext`` with ``@section("name")`` (and
``needs=`` when it needs a winner, test-split results or the winner's checkpoint; ``trainable=``
when only that kind of study may list it) in the module of its study kind, and list
``"name"`` in the study's ``ReportSpec``; a new module must also be imported below so that its
sections register.
"""

# Importing each section module runs its @section decorators, which fill SECTIONS.
from . import classification, common, detection, segmentation, sweep  # noqa: F401
from .base import SECTIONS, ReportContext, get_section, render_sections, section, validate_spec

__all__ = ["SECTIONS", "ReportContext", "get_section", "render_sections", "section", "validate_spec"]
