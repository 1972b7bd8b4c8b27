"""Reading fields of untrusted API records: the one set of checks both listings (v1 and v3) validate with.

A missing required field or a wrong type raises RecordError naming the partition, the tx_id (or offset) and the
field (nested ones as the API names them, `block.height`), so that the whole day is refused rather than
half-stored.
"""

from __future__ import annotations

from typing import Any

from stx_pipeline.hiro.errors import RecordError


def is_int(value: Any) -> bool:
    """An integer as JSON gives it; bool is an int in Python, and the API never sends one for these fields."""
    return isinstance(value, int) and not isinstance(value, bool)


class Where:
    """Names the record being read, for error messages: partition, offset in the day's listing, tx_id once
    known, and the enclosing object of a nested field."""

    __slots__ = ("offset", "partition", "prefix", "tx_id")

    def __init__(self, partition: str, offset: int, *, prefix: str = "") -> None:
        self.partition = partition
        self.offset = offset
        self.prefix = prefix
        self.tx_id: str | None = None

    def nested(self, name: str) -> Where:
        """The same record, naming fields inside its `name` object as `name.field`."""
        inner = Where(self.partition, self.offset, prefix=f"{self.prefix}{name}.")
        inner.tx_id = self.tx_id
        return inner

    def fail(self, field: str, problem: str) -> RecordError:
        who = f"transaction {self.tx_id}" if self.tx_id else "the transaction"
        return RecordError(
            f"partition {self.partition}: {who} at offset {self.offset}: field '{self.prefix}{field}' {problem}. "
            "The API sent a record this pipeline cannot store; nothing of this day was written. "
            "Re-run the partition later; if it persists, the API changed: report it with this message."
        )


def _present(record: dict[str, Any], field: str, where: Where, required: bool) -> Any:
    """The field's value, None when absent (or null); a required field must be there."""
    value = record.get(field)
    if value is None and required:
        raise where.fail(field, "is missing")
    return value


def int_field(record: dict[str, Any], field: str, where: Where, *, required: bool = False) -> int | None:
    value = _present(record, field, where, required)
    if value is None:
        return None
    if is_int(value):
        return value
    raise where.fail(field, f"should be an integer, got {type(value).__name__} {str(value)[:40]!r}")


def str_field(record: dict[str, Any], field: str, where: Where, *, required: bool = False) -> str | None:
    value = _present(record, field, where, required)
    if value is None:
        return None
    if isinstance(value, str):
        if required and not value:
            raise where.fail(field, "is empty")
        return value
    raise where.fail(field, f"should be a string, got {type(value).__name__}")


def object_field(record: dict[str, Any], field: str, where: Where, *, required: bool = False) -> dict[str, Any] | None:
    value = _present(record, field, where, required)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise where.fail(field, f"should be an object, got {type(value).__name__}")
    return value


def ustx_amount(value: Any, field: str, where: Where) -> int | None:
    """Micro-STX amounts come as decimal strings (they can exceed JavaScript's safe integers)."""
    if value is None:
        return None
    if is_int(value):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise where.fail(field, f"should be a decimal string of micro-STX, got {str(value)[:40]!r}")
