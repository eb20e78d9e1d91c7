"""`LiveProfiles`: the Job profiles in force, swapped whole on reload (SIGHUP) without a restart.

Submission, dispatch and render read the catalog through this one object (`catalog()`, a
`ProfileSource`), once per task, so a reload is one reference assignment: a task is validated and
rendered against either the old profiles or the new ones, never a mix. A configuration that does not
validate keeps the old profiles, and the reason is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from nightwatch.domain.profiles import ProfileCatalog

logger = logging.getLogger(__name__)


class LiveProfiles:
    def __init__(self, catalog: ProfileCatalog) -> None:
        self._catalog = catalog

    def catalog(self) -> ProfileCatalog:
        return self._catalog

    def replace(self, catalog: ProfileCatalog) -> None:
        self._catalog = catalog

    def reload(self, config_file: str | Path | None, load: Callable[[str | Path | None], ProfileCatalog]) -> bool:
        """Read the profiles again (`load(config_file)`); on any error keep the current ones. True if swapped."""
        try:
            catalog = load(config_file)
        except Exception as exc:  # ConfigError, unreadable file: the running profiles stay
            logger.error("profiles not reloaded, keeping the current ones: %s", exc)
            return False
        self.replace(catalog)
        logger.info("profiles reloaded: %s", ", ".join(sorted(catalog.profiles)))
        return True
