"""Python SDK of the Cairn gateway API: ``from libs.sdk import Cairn`` (or ``AsyncCairn`` for asyncio)."""
from libs.sdk.aio import AsyncCairn
from libs.sdk.client import Cairn
from libs.sdk.errors import CairnAPIError, CairnConfigError, CairnError, CairnIntegrityError
from libs.sdk.secret import Secret

__all__ = ["AsyncCairn", "Cairn", "CairnAPIError", "CairnConfigError", "CairnError", "CairnIntegrityError",
           "Secret"]
