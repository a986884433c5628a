"""The dashboard's design: Panel's Fast design without its web font, so pages request nothing
from the network (Fast links Open Sans from Google Fonts; the system sans-serif is used instead)."""
from __future__ import annotations

from typing import ClassVar

from panel.io.resources import CDN_DIST
from panel.theme import Fast


class OfflineFast(Fast):
    """:class:`panel.theme.Fast` with no font resource. Its own script is named by its bundled path
    (Panel resolves relative resource paths by class name, which a subclass changes)."""

    _resources: ClassVar[dict] = {
        **Fast._resources, "font": {},
        "js_modules": {**Fast._resources["js_modules"], "fast-design": f"{CDN_DIST}bundled/fast/js/fast_design.js"}}
