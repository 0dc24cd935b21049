"""Key lifecycle (SPEC §13.1): one module per use case, a facade for the routes and the CLI."""

from ssbg.services.keys.inventory import KeyView
from ssbg.services.keys.service import KeyService

__all__ = ["KeyService", "KeyView"]
