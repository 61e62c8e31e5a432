"""How tax runs live: a department service that keeps the deed-tax clearances.

The clearances (:mod:`services.tax.pivot`) live in tax's ``cleared`` table, one entry
per 不动产单元代码, so the record that a transfer's deed tax is paid survives a restart.
"""

from __future__ import annotations

import faust

from services.runtime.department import department_app
from services.runtime.topology import Keeping
from services.tax.pivot import DeedTax

CLEARANCES = Keeping("cleared", DeedTax, tuple, list)


def tax_app() -> faust.App:
    return department_app("tax", CLEARANCES)
