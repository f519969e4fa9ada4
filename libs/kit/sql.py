"""Building parameterised WHERE clauses for list endpoints, without string-pasting values."""
from __future__ import annotations

from typing import Any


class Filters:
    """Collects conditions and their arguments; values always travel as ``$n`` parameters.

        f = Filters()
        f.add("type = {}", "vision")
        f.add("occurred_at >= {}", since)
        sql = f"SELECT ... FROM t {f.where()} LIMIT {f.arg(50)}"
        await pool.fetch(sql, *f.args)
    """

    def __init__(self, *always: str) -> None:
        self.clauses: list[str] = list(always)
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, template: str, *values: Any) -> None:
        """Add a condition; each ``{}`` in ``template`` becomes the placeholder of the next value."""
        self.clauses.append(template.format(*(self.arg(v) for v in values)))

    def where(self) -> str:
        return f"WHERE {' AND '.join(self.clauses)}" if self.clauses else ""
