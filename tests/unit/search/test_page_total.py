"""The Postgres index counts and pages in separate statements; the answer must still agree with itself."""
import uuid
from datetime import datetime, timezone

from libs.search.port import SearchDocument, SearchHit, SearchQuery
from libs.search.postgres import _page


def hits(n: int) -> list[SearchHit]:
    now = datetime.now(timezone.utc)
    return [SearchHit(SearchDocument(model_id=uuid.uuid4(), name=f"m{i}", type="cnn", framework="pytorch", owner="o",
                                           created_at=now, updated_at=now))
            for i in range(n)]


def test_a_document_counted_but_not_yet_paged_is_not_reported():
    # the count ran after a write the page did not see: total 1, no hits → the page's own answer wins
    page = _page(SearchQuery(page=1, page_size=20), counted=1, hits=[])
    assert (page.total, page.hits) == (0, [])


def test_a_short_page_tells_the_total_exactly():
    page = _page(SearchQuery(page=2, page_size=20), counted=30, hits=hits(5))
    assert page.total == 25


def test_a_full_page_raises_a_count_that_lags_behind():
    page = _page(SearchQuery(page=1, page_size=20), counted=3, hits=hits(20))
    assert page.total == 20
    assert _page(SearchQuery(page=1, page_size=20), counted=90, hits=hits(20)).total == 90


def test_an_empty_page_past_the_end_keeps_the_count_below_the_offset():
    assert _page(SearchQuery(page=3, page_size=20), counted=25, hits=[]).total == 25
    assert _page(SearchQuery(page=3, page_size=20), counted=55, hits=[]).total == 40
