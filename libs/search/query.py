"""Turns request parameters into a ``SearchQuery``, refusing bad ones with 422 naming the parameter.

Metric ranges are written ``metric=<name><op><number>`` with op one of ``>=``, ``>``, ``<=``, ``<``,
``=``, repeatable (``metric=accuracy>=0.9&metric=latency_p99_ms<5``). ``sort_by`` is a field
(relevance, name, created_at, updated_at) or else a metric name; models without that metric come last
in either order."""
from __future__ import annotations

import math
import re

from libs.kit.errors import FieldError, ValidationFailed
from libs.search.port import SORT_FIELDS, STAGES, MetricRange, SearchQuery

METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_RANGE = re.compile(r"^\s*(?P<name>[^<>=\s]+)\s*(?P<op>>=|<=|>|<|=)\s*(?P<value>\S+)\s*$")
#: Deep pages cost the index more than they help anyone; OpenSearch refuses past 10,000 by default.
MAX_WINDOW = 10_000
MAX_PAGE_SIZE = 100


def _refuse(name: str, message: str) -> ValidationFailed:
    # named like the framework names query parameters (``query.page_size``), so every 422 reads the same
    return ValidationFailed(f"{name}: {message}", errors=[FieldError(f"query.{name}", message)])


def parse_metric_range(text: str) -> MetricRange:
    match = _RANGE.match(text)
    if not match:
        raise _refuse("metric", f"{text!r} is not <name><op><number>, e.g. accuracy>=0.9 (op: >=, >, <=, <, =)")
    name, op, raw = match["name"], match["op"], match["value"]
    if not METRIC_NAME.match(name):
        raise _refuse("metric", f"{name!r} is not a metric name")
    try:
        value = float(raw)
    except ValueError:
        raise _refuse("metric", f"{raw!r} is not a number") from None
    if not math.isfinite(value):
        raise _refuse("metric", f"{raw!r} is not a finite number")
    return MetricRange(metric=name, op=op, value=value)  # type: ignore[arg-type]


def build_query(
    *,
    q: str | None = None,
    framework: str | None = None,
    task: str | None = None,
    type: str | None = None,
    tag: list[str] | None = None,
    stage: str | None = None,
    metric: list[str] | None = None,
    sort_by: str | None = None,
    order: str = "desc",
    page: int = 1,
    page_size: int = 20,
) -> SearchQuery:
    text = (q or "").strip() or None
    if text is not None and len(text) > 200:
        raise _refuse("q", "at most 200 characters")
    for tag_value in tag or []:
        if not TAG.match(tag_value):
            raise _refuse("tag", f"{tag_value!r} is not a tag (key or key:value)")
    if stage is not None and stage not in STAGES:
        raise _refuse("stage", f"unknown stage {stage!r}; one of {', '.join(STAGES)}")
    if order not in ("asc", "desc"):
        raise _refuse("order", "asc or desc")
    chosen = sort_by or ("relevance" if text else "created_at")
    if chosen not in SORT_FIELDS and not METRIC_NAME.match(chosen):
        raise _refuse("sort_by", f"{chosen!r} is neither a field ({', '.join(SORT_FIELDS)}) nor a metric name")
    if page < 1:
        raise _refuse("page", "at least 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise _refuse("page_size", f"between 1 and {MAX_PAGE_SIZE}")
    if page * page_size > MAX_WINDOW:
        raise _refuse("page", f"page × page_size may not pass {MAX_WINDOW}; narrow the query instead")
    return SearchQuery(
        q=text, framework=framework or None, task=task or None, type=type or None, tags=tuple(tag or ()),
        stage=stage, metric_ranges=tuple(parse_metric_range(m) for m in metric or []), sort_by=chosen,
        order=order,  # type: ignore[arg-type]
        page=page, page_size=page_size,
    )
