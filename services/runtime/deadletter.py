"""Dead letters: malformed input never crashes a service; it is parked with the reason."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict


class DeadLetter(BaseModel):
    """What the dead-letter topic holds for one rejected message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    reason: str
    field: str
    source_topic: str
    partition: int
    offset: int
    original_base64: str  # the bytes exactly as received
    failed_at: datetime

    @classmethod
    def of(
        cls,
        service: str,
        reason: str,
        field: str,
        topic: str,
        partition: int,
        offset: int,
        original: bytes,
    ) -> DeadLetter:
        return cls(
            service=service,
            reason=reason,
            field=field,
            source_topic=topic,
            partition=partition,
            offset=offset,
            original_base64=base64.b64encode(original).decode("ascii"),
            failed_at=datetime.now(UTC),
        )

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.original_base64)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()
