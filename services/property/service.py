"""How property runs live: a department service that keeps the register.

The register (:mod:`services.property.register`) lives in property's ``units`` table,
one entry per 不动产单元代码, so the walk's register effects — lock, transfer, seizure,
mortgage, discharge, objection — and the release of a rejected transfer's lock survive a
restart.
"""

from __future__ import annotations

import faust

from services.property.register import UnitRegister, UnitState
from services.runtime.department import department_app
from services.runtime.topology import Keeping

REGISTER = Keeping("units", UnitRegister, UnitState.from_dict, UnitState.to_dict)


def property_app() -> faust.App:
    return department_app("property", REGISTER)
