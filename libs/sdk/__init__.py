"""Python SDK of the Cairn gateway API: ``from libs.sdk import Cairn``."""
from libs.sdk.client import Cairn
from libs.sdk.errors import CairnAPIError, CairnConfigError, CairnError, CairnIntegrityError

__all__ = ["Cairn", "CairnAPIError", "CairnConfigError", "CairnError", "CairnIntegrityError"]
