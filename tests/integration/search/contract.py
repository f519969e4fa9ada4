"""The ``SearchIndex`` contract: what every adapter must do, run against each real backend.

Subclasses provide an ``index`` fixture: a fresh, empty, opened index per test."""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from libs.search.port import SearchDocument, SearchIndex
from libs.search.query import build_query

T0 = datetime(2026, 6, 15, 10, 0, tzinfo=timezone.utc)


def doc(name: str, minutes: int = 0, **fields) -> SearchDocument:
    base = dict(model_id=uuid.uuid4(), name=name, type="transformer", framework="pytorch", owner="alice",
                created_at=T0 + timedelta(minutes=minutes), updated_at=T0 + timedelta(minutes=minutes),
                description="", task="text-classification", version="1.0.0", version_id=uuid.uuid4(),
                status="draft")
    return SearchDocument(**{**base, **fields})


def names(page) -> list[str]:
    return [h.document.name for h in page.hits]


class SearchIndexContract:
    async def test_a_document_round_trips(self, index: SearchIndex):
        original = doc("bert-base-chinese", description="BERT for Chinese text", model_tags={"language": "chinese"},
                       version="1.1.0", status="production", metrics={"accuracy": 0.97, "f1": 0.95},
                       version_tags=("stable",), task=None)
        await index.upsert([original])
        page = await index.search(build_query())
        assert page.total == 1 and page.hits[0].document == original

    async def test_words_and_typos_find_a_model(self, index: SearchIndex):
        await index.upsert([doc("bert-base-chinese", description="BERT base for Chinese"),
                            doc("resnet-50", description="image classifier"),
                            doc("whisper-small", description="speech recognition", model_tags={"team": "audio"})])
        assert names(await index.search(build_query(q="bert"))) == ["bert-base-chinese"]
        assert names(await index.search(build_query(q="bertt"))) == ["bert-base-chinese"]
        assert names(await index.search(build_query(q="speech"))) == ["whisper-small"]
        assert names(await index.search(build_query(q="audio"))) == ["whisper-small"]
        assert (await index.search(build_query(q="zzqxv"))).total == 0

    async def test_prefixes_several_words_and_odd_characters(self, index: SearchIndex):
        await index.upsert([doc("bert-base-chinese", description="BERT base for Chinese"),
                            doc("bert-large-english", description="BERT large for English")])
        assert sorted(names(await index.search(build_query(q="ber")))) == ["bert-base-chinese", "bert-large-english"]
        assert names(await index.search(build_query(q="bert chinese"))) == ["bert-base-chinese"]
        assert names(await index.search(build_query(q="bert-base"))) == ["bert-base-chinese"]
        for odd in ("bert' | 'x", "a\\b", "!!!", "'", "(bert", "bert:*"):
            page = await index.search(build_query(q=odd))  # read as words, never as query syntax
            assert page.total == len(page.hits) <= 2

    async def test_filters_combine(self, index: SearchIndex):
        await index.upsert([
            doc("a", framework="pytorch", task="text-classification", type="transformer", status="production",
                model_tags={"language": "chinese"}, version_tags=("stable",)),
            doc("b", framework="tensorflow", task="text-classification", type="transformer", status="production"),
            doc("c", framework="pytorch", task="image-classification", type="vision", status="staging",
                model_tags={"language": "english"}),
        ])

        async def found(**kwargs) -> list[str]:
            return sorted(names(await index.search(build_query(**kwargs))))

        assert await found(framework="pytorch") == ["a", "c"]
        assert await found(framework="pytorch", task="text-classification") == ["a"]
        assert await found(type="vision") == ["c"]
        assert await found(stage="production") == ["a", "b"]
        assert await found(tag=["language"]) == ["a", "c"]
        assert await found(tag=["language:chinese"]) == ["a"]
        assert await found(tag=["stable"]) == ["a"]
        assert await found(tag=["language", "stable"]) == ["a"]
        assert await found(framework="jax") == []

    async def test_metric_ranges(self, index: SearchIndex):
        await index.upsert([doc("low", metrics={"accuracy": 0.5, "latency_p99_ms": 1.0}),
                            doc("high", metrics={"accuracy": 0.95, "latency_p99_ms": 9.0}),
                            doc("exact", metrics={"accuracy": 0.9}),
                            doc("none")])

        async def found(*ranges: str) -> list[str]:
            return sorted(names(await index.search(build_query(metric=list(ranges)))))

        assert await found("accuracy>=0.9") == ["exact", "high"]
        assert await found("accuracy>0.9") == ["high"]
        assert await found("accuracy<0.9") == ["low"]
        assert await found("accuracy<=0.9") == ["exact", "low"]
        assert await found("accuracy=0.9") == ["exact"]
        assert await found("accuracy>=0.4", "latency_p99_ms<5") == ["low"]
        assert await found("f1>=0") == []

    async def test_sort_by_a_metric_puts_models_without_it_last(self, index: SearchIndex):
        await index.upsert([doc("mid", metrics={"accuracy": 0.8}), doc("none"),
                            doc("top", metrics={"accuracy": 0.99}), doc("bottom", metrics={"accuracy": 0.1})])
        assert names(await index.search(build_query(sort_by="accuracy", order="desc"))) == ["top", "mid", "bottom", "none"]
        assert names(await index.search(build_query(sort_by="accuracy", order="asc"))) == ["bottom", "mid", "top", "none"]

    async def test_pages_sorted_by_a_metric_run_on_into_models_without_it(self, index: SearchIndex):
        await index.upsert([doc("m1", metrics={"f1": 0.9}), doc("m2", metrics={"f1": 0.8}), doc("m3", metrics={"f1": 0.7}),
                            doc("n1", metrics={"other": 1.0}), doc("n2")])
        pages = [names(await index.search(build_query(sort_by="f1", page=p, page_size=2))) for p in (1, 2, 3)]
        assert pages[0] == ["m1", "m2"] and pages[1][0] == "m3" and sorted(pages[1][1:] + pages[2]) == ["n1", "n2"]
        filtered = await index.search(build_query(sort_by="f1", framework="pytorch", page=2, page_size=2))
        assert filtered.total == 5 and names(filtered)[0] == "m3"

    async def test_sort_by_fields(self, index: SearchIndex):
        await index.upsert([doc("beta", 2), doc("alpha", 3), doc("gamma", 1)])
        assert names(await index.search(build_query(sort_by="name", order="asc"))) == ["alpha", "beta", "gamma"]
        assert names(await index.search(build_query(sort_by="created_at", order="desc"))) == ["alpha", "beta", "gamma"]
        assert names(await index.search(build_query(sort_by="created_at", order="asc"))) == ["gamma", "beta", "alpha"]

    async def test_relevance_puts_the_closer_match_first(self, index: SearchIndex):
        await index.upsert([doc("vision-transformer", description="mentions bert once"), doc("bert", 1)])
        page = await index.search(build_query(q="bert"))
        assert names(page)[0] == "bert" and page.hits[0].score >= page.hits[-1].score

    async def test_pages_cover_every_match_once(self, index: SearchIndex):
        await index.upsert([doc(f"model-{i:02d}", i, metrics={"accuracy": i / 100}) for i in range(23)])
        seen: list[str] = []
        for page_no in (1, 2, 3):
            page = await index.search(build_query(sort_by="accuracy", page=page_no, page_size=10))
            assert page.total == 23
            seen += names(page)
        assert seen == [f"model-{i:02d}" for i in reversed(range(23))]
        assert (await index.search(build_query(page=4, page_size=10))).hits == []

    async def test_a_model_scope_restricts_matches_totals_and_pages(self, index: SearchIndex):
        """``SearchQuery.model_ids`` (set only by the gateway) keeps exactly those models, under every
        other filter, text, sort and page; an empty scope matches nothing."""
        docs = [doc(f"scoped-{i:02d}", i, metrics={"accuracy": i / 100} if i % 2 else {},
                    description="walrus detector" if i in (4, 5) else "") for i in range(12)]
        await index.upsert(docs)
        kept = [docs[1], docs[4], docs[7], docs[10]]
        scope = tuple(d.model_id for d in kept)

        def scoped(**params):
            return replace(build_query(**params), model_ids=scope)

        page = await index.search(scoped())
        assert page.total == 4 and names(page) == [d.name for d in reversed(kept)]
        seen: list[str] = []
        for page_no in (1, 2, 3):
            one = await index.search(scoped(sort_by="accuracy", page=page_no, page_size=2))
            assert one.total == 4
            seen += names(one)
        # the two with the metric first, best first; then the two without it
        assert seen[:2] == ["scoped-07", "scoped-01"] and sorted(seen[2:]) == ["scoped-04", "scoped-10"]
        assert names(await index.search(scoped(q="walrus"))) == ["scoped-04"]  # scoped-05 is outside
        assert (await index.search(build_query(q="walrus"))).total == 2
        assert names(await index.search(scoped(metric=["accuracy>=0.05"]))) == ["scoped-07"]
        assert (await index.search(replace(build_query(), model_ids=(uuid.uuid4(),)))).total == 0
        nothing = await index.search(replace(build_query(), model_ids=()))
        assert nothing.total == 0 and nothing.hits == []
        assert (await index.search(build_query())).total == 12  # no scope: everything

    async def test_writes_replace_and_deletes_remove(self, index: SearchIndex):
        first = doc("before", metrics={"accuracy": 0.5}, status="draft")
        await index.upsert([first])
        await index.upsert([first])
        changed = SearchDocument(**{**first.__dict__, "name": "after", "metrics": {"f1": 0.7}, "status": "staging"})
        await index.upsert([changed])
        page = await index.search(build_query())
        assert page.total == 1 and page.hits[0].document == changed
        assert (await index.search(build_query(metric=["accuracy>=0"]))).total == 0
        await index.delete([first.model_id, uuid.uuid4()])
        assert (await index.search(build_query())).total == 0
        await index.upsert([doc("x"), doc("y")])
        assert await index.count() == 2
        await index.clear()
        assert await index.count() == 0
        assert await index.ready() == "ok"


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]
