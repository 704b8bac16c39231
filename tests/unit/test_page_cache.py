"""The page cache: stays within its byte budget, never serves a page of an older version, and
keeps most pages when clients cycle through more than fit."""

from __future__ import annotations

import gzip

from cheesecellar.web.pages import Page, PageCache, render_root


def page(size: int, tag: str = "") -> Page:
    return Page(gzip=tag.encode().ljust(size, b"x"), content_type="text/html", etag=f'"{tag}"')


def test_a_page_is_served_only_for_the_version_it_was_rendered_from() -> None:
    cache = PageCache(max_bytes=1000)
    first = page(100, "v1")
    cache.put(("demo", "html"), "1", first)
    assert cache.get(("demo", "html"), "1") is first
    assert cache.get(("demo", "html"), "2") is None
    assert cache.get(("demo", "json"), "1") is None
    second = page(300, "v2")
    cache.put(("demo", "html"), "2", second)
    assert cache.get(("demo", "html"), "2") is second
    assert cache.get(("demo", "html"), "1") is None


def test_the_byte_budget_holds_and_a_page_larger_than_it_is_still_kept() -> None:
    cache = PageCache(max_bytes=1000)
    for n in range(50):
        cache.put((f"p{n}", "html"), "1", page(100))
        held = [k for k in range(n + 1) if cache.get((f"p{k}", "html"), "1") is not None]
        assert len(held) == min(n + 1, 10)
        assert n in held  # the page just put is always there
    cache.put(("huge", "html"), "1", page(5000))
    assert cache.get(("huge", "html"), "1") is not None
    assert all(cache.get((f"p{k}", "html"), "1") is None for k in range(50))
    cache.put(("small", "html"), "1", page(10))
    assert cache.get(("huge", "html"), "1") is None  # dropped to make room again


def test_cycling_through_more_pages_than_fit_keeps_most_of_them() -> None:
    cache = PageCache(max_bytes=800 * 100)  # 800 of 1000 pages fit
    hits = 0
    for round_ in range(5):
        for n in range(1000):
            key = (f"p{n}", "html")
            if cache.get(key, "1") is not None:
                hits += round_ > 0
            else:
                cache.put(key, "1", page(100))
    # Least-recently-used would hit nothing here; random eviction keeps well over half.
    assert hits > 0.5 * 4 * 1000, hits


def test_pages_are_kept_gzip_coded_and_a_large_one_also_as_rendered() -> None:
    small = render_root({"demo": "Demo"}, "text/html")
    assert small.plain is None  # inflated per request for clients that do not take gzip
    assert gzip.decompress(small.gzip) == small.body
    assert b'<a href="demo/">Demo</a>' in small.body
    assert small.size == len(small.gzip) < len(small.body)

    names = {f"project-{n:05d}": f"Project-{n:05d}" for n in range(3000)}
    large = render_root(names, "text/html")
    assert large.plain is not None and len(large.plain) > 64 * 1024
    assert gzip.decompress(large.gzip) == large.body == large.plain
    assert large.size == len(large.gzip) + len(large.plain)
