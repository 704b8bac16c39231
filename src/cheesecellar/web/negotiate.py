"""Content negotiation for the simple pages: PEP 691 media types (Accept with q-values and
?format=), and gzip (Accept-Encoding)."""

from __future__ import annotations

HTML = "text/html"
V1_HTML = "application/vnd.pypi.simple.v1+html"
V1_JSON = "application/vnd.pypi.simple.v1+json"
# Server order breaks ties, so */* and a missing Accept get HTML.
OFFERS = (HTML, V1_HTML, V1_JSON)
_LATEST = {
    "application/vnd.pypi.simple.latest+json": V1_JSON,
    "application/vnd.pypi.simple.latest+html": V1_HTML,
}


def _ranges(accept: str) -> list[tuple[str, float]]:
    result: list[tuple[str, float]] = []
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                q = q if 0.0 <= q <= 1.0 else 0.0
        media = media.lower()
        result.append((_LATEST.get(media, media), q))
    return result


def _quality(offer: str, ranges: list[tuple[str, float]]) -> float:
    """The q of the most specific range that matches *offer* (exact > type/* > */*)."""
    kind = offer.split("/")[0]
    best: tuple[int, float] | None = None
    for media, q in ranges:
        if media == offer:
            rank = 3
        elif media == f"{kind}/*":
            rank = 2
        elif media == "*/*":
            rank = 1
        else:
            continue
        if best is None or rank > best[0]:
            best = (rank, q)
    return best[1] if best else 0.0


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether a gzip-coded body may be sent (RFC 9110 §12.5.3): gzip (or x-gzip) listed, or
    covered by ``*``, with a q above 0. Without the header only the page as rendered is sent:
    a client that sends none may not decode."""
    if not accept_encoding:
        return False
    ranges = _ranges(accept_encoding)
    listed = [q for coding, q in ranges if coding in ("gzip", "x-gzip")]
    if listed:
        return max(listed) > 0
    return any(coding == "*" and q > 0 for coding, q in ranges)


def choose(accept: str | None, format_param: str | None = None) -> str | None:
    """The media type to answer with, or None when nothing acceptable can be served (406)."""
    if format_param:
        wanted = _LATEST.get(format_param.strip().lower(), format_param.strip().lower())
        return wanted if wanted in OFFERS else None
    ranges = _ranges(accept or "*/*")
    best, best_q = None, 0.0
    for offer in OFFERS:
        q = _quality(offer, ranges)
        if q > best_q:
            best, best_q = offer, q
    return best
