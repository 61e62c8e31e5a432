"""How a utility runs live: a department service that keeps its account holders.

Each utility (power, water, gas, telecom) keeps its holders
(:mod:`services.utilities.accounts`) in its ``holders`` table, so the last leg of a
linked transfer — the account moved to the new owner — survives a restart.
"""

from __future__ import annotations

import faust

from services.runtime.department import department_app
from services.runtime.topology import Keeping
from services.utilities.accounts import UTILITIES, UtilityAccounts

ACCOUNTS = Keeping("holders", UtilityAccounts, str, str)


def utility_app(utility: str) -> faust.App:
    if utility not in UTILITIES:
        raise ValueError(f"{utility!r} is not a utility ({', '.join(UTILITIES)})")
    return department_app(utility, ACCOUNTS)
