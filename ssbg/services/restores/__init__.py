"""Restores (SPEC §3 Restores, §5, §8): one module per use case, a facade for the routes."""

from ssbg.services.restores.downloads import RestoreDownload
from ssbg.services.restores.results import RestoreOutcome
from ssbg.services.restores.service import RestoreService

__all__ = ["RestoreDownload", "RestoreOutcome", "RestoreService"]
