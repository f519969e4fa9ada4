"""Validation of search parameters: bad input is refused naming the parameter."""
from __future__ import annotations

import pytest

from libs.kit.errors import ValidationFailed
from libs.search.opensearch import build_request
from libs.search.port import MetricRange
from libs.search.query import build_query, parse_metric_range


@pytest.mark.parametrize("text, expected", [
    ("accuracy>=0.9", MetricRange("accuracy", ">=", 0.9)),
    ("latency_p99_ms<5", MetricRange("latency_p99_ms", "<", 5.0)),
    (" f1 = 1 ", MetricRange("f1", "=", 1.0)),
    ("loss<=1e-3", MetricRange("loss", "<=", 0.001)),
])
def test_metric_ranges_parse(text, expected):
    assert parse_metric_range(text) == expected


@pytest.mark.parametrize("text", ["accuracy", "accuracy>>0.9", "accuracy>=high", "accuracy>=nan", ">=0.9",
                                  "acc uracy>=1", "accuracy>=inf"])
def test_bad_metric_ranges_name_the_parameter(text):
    with pytest.raises(ValidationFailed) as caught:
        build_query(metric=[text])
    assert caught.value.errors[0].field == "query.metric"


@pytest.mark.parametrize("kwargs, field", [
    ({"stage": "live"}, "stage"), ({"order": "up"}, "order"), ({"sort_by": "accuracy; drop"}, "sort_by"),
    ({"page": 0}, "page"), ({"page_size": 101}, "page_size"), ({"page": 200, "page_size": 100}, "page"),
    ({"tag": ["bad tag"]}, "tag"), ({"q": "x" * 201}, "q"),
])
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(ValidationFailed) as caught:
        build_query(**kwargs)
    assert caught.value.errors[0].field == f"query.{field}"


def test_defaults_sort_by_relevance_with_text_and_by_creation_without():
    assert build_query(q="bert").sort_by == "relevance"
    assert build_query(q="  ").q is None
    assert build_query().sort_by == "created_at"
    query = build_query(sort_by="accuracy", order="asc", page=3, page_size=10)
    assert query.sorts_by_metric and query.offset == 20


def test_opensearch_request_carries_every_filter():
    body = build_request(build_query(q="bertt", framework="pytorch", tag=["language:chinese"], stage="production",
                                     metric=["accuracy>=0.9"], sort_by="accuracy", page=2, page_size=5))
    filters = body["query"]["bool"]["filter"]
    assert {"term": {"framework": "pytorch"}} in filters and {"term": {"status": "production"}} in filters
    assert {"term": {"tag_terms": "language:chinese"}} in filters
    nested = [f for f in filters if "nested" in f][0]["nested"]["query"]["bool"]["filter"]
    assert nested == [{"term": {"metric_values.name": "accuracy"}}, {"range": {"metric_values.value": {"gte": 0.9}}}]
    assert body["sort"][0]["metric_values.value"]["missing"] == "_last"
    assert (body["from"], body["size"], body["track_total_hits"]) == (5, 5, True)
    assert body["query"]["bool"]["must"][0]["bool"]["should"][0]["multi_match"]["fuzziness"] == "AUTO"
