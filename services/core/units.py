"""Units (不动产单元): their codes and who owns them before a run.

The 不动产单元代码 is what links a linked transfer's register entry to the unit's power,
water, gas and telecom accounts ("一码关联").  Every case of a property matter carries
its unit's code; the demand model numbers units and this module formats them.
"""

from __future__ import annotations

import zlib


def unit_code(county_index: int, unit: int) -> str:
    """A 28-character 不动产单元代码-shaped id for unit number ``unit`` in a county
    (6-digit district code, 6-digit cadastral zone, GB + 5-digit parcel, F + 8-digit
    building unit); stable across processes."""
    district = 361100 + county_index + 1  # 上饶市 3611xx
    zone = zlib.crc32(f"{county_index}/{unit}".encode()) % 10**6
    return f"{district:06d}{zone:06d}GB{unit % 10**5:05d}F{unit:08d}"[:28]


def original_owner(unit: str) -> str:
    """Who owns a unit — and holds each of its utility accounts — before the run."""
    return f"业主-{unit[-8:]}"


def buyer(case_id: str) -> str:
    """The buyer (买受人) of a transfer case: the unit's owner once it is registered."""
    return f"买受人-{case_id}"
