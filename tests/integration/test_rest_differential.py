"""REST transcoding by google.api.http: the same requests to Envoy and to meshgate.

Both gateways front the same bookstore backend (tests/support/bookstore_backend.py)
with the same descriptor set. Envoy runs grpc_json_transcoder with
``auto_mapping: false``, ``convert_grpc_status: true`` and
``reject_unknown_method: true``; meshgate runs a route with
``transcode: {services: [meshgate.test.v1.Bookstore]}``.

Every case in SAME carries Envoy's observed answer: its status and, where Envoy
answered JSON, a pinned part of that JSON (``expect``; dicts match on the keys
given, lists on every element, ABSENT says a key must be missing).
``test_envoy_reference`` checks Envoy alone against those pins, so a change of
Envoy's behaviour shows up as a failure there rather than as a meshgate bug.
``test_same_answer_as_envoy`` then requires meshgate to answer with the same
status and equal JSON (``"details": []`` counts as absent); for Envoy's own
plain-text errors, meshgate must answer the same status with a JSON
google.rpc.Status whose code fits the status. For google.api.HttpBody answers
the bytes and the content-type must be equal.

DIFFERENT lists the deliberate differences, each with meshgate's expected
status, Envoy's observed status and the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.bookstore_backend import (
    COVER_PNG,
    EXTRAS_SERVICE,
    SERVICE,
    bookstore_descriptor_set,
)
from tests.support.envoy import run_envoy, transcoder_config
from tests.support.gateway import run_gateway
from tests.support.net import free_port
from tests.support.processes import python_module, running

pytestmark = pytest.mark.integration

ROUTE_TIMEOUT_SECONDS = 5.0
JSON = "application/json"
TEXT = "text/plain"


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Envoy's observed answer.
    status: int = 200
    content_type: str = JSON
    expect: Any = None
    """A pinned part of Envoy's JSON answer (None: not pinned)."""
    raw: bytes | None = None
    """Envoy's exact body, for a non-JSON (google.api.HttpBody) answer."""


def get(name: str, path: str, **kwargs: Any) -> Case:
    return Case(name, "GET", path, **kwargs)


def send_json(name: str, method: str, path: str, body: Any, **kwargs: Any) -> Case:
    return Case(name, method, path, orjson.dumps(body), {"content-type": JSON}, **kwargs)


def status_json(code: int, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    body["details"] = list(details) if details else ABSENT
    return body


def not_found(kind: str, name: str, **metadata: str) -> dict[str, Any]:
    return status_json(
        5,
        f"{kind} {name} not found",
        {
            "@type": "type.googleapis.com/google.rpc.ResourceInfo",
            "resourceType": f"meshgate.test.v1.{kind.capitalize()}",
            "resourceName": name,
            "description": f"no such {kind}",
        },
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": f"{kind.upper()}_NOT_FOUND",
            "domain": "bookstore.meshgate.test",
            "metadata": metadata,
        },
    )


def bad_request(field_path: str, description: str) -> dict[str, Any]:
    return status_json(
        3,
        f"invalid {field_path}: {description}",
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": field_path, "description": description}],
        },
    )


def names(*book_names: str) -> list[dict[str, Any]]:
    return [{"name": name} for name in book_names]


SHELF1 = ("shelves/1/books/1", "shelves/1/books/2", "shelves/1/books/3")

BOOK_1_1 = {
    "name": "shelves/1/books/1",
    "id": "1",
    "title": "The Left Hand of Darkness",
    "author": "Ursula K. Le Guin",
    "genre": "GENRE_FICTION",
    "tags": ["classic", "sf"],
    "isbnDigest": "AAH+/w==",
    "published": "1969-03-01T00:00:00Z",
    "pages": 304,
    "copiesSold": "1234567890123",
    "rating": 4.5,
    "labels": {"isbn": "978-0441478125", "lang": "en"},
}
BOOK_2_1 = {
    "name": "shelves/2/books/1",
    "id": "1",
    "title": "\u6625\u671b \U0001f338",
    "author": "\u675c\u752b",
    "genre": "GENRE_POETRY",
    "tags": ["t\u00e0ng", "poetry"],
    "isbnDigest": "5pil",
    "published": "0757-04-01T00:00:00Z",
    "pages": 1,
    "copiesSold": "12",
    "rating": -0.5,
    "labels": {"isbn": "none", "lang": "zh"},
}
BIG = "9007199254740993"  # 2**53 + 1: not a float64


def listed(
    *book_names: str, request: dict[str, Any], next_page_token: Any = ABSENT
) -> dict[str, Any]:
    return {
        "books": names(*book_names) if book_names else ABSENT,
        "request": request,
        "nextPageToken": next_page_token,
    }


def books_query(
    name: str,
    query: str,
    *book_names: str,
    request: dict[str, Any],
    shelf: str = "1",
    **kwargs: Any,
) -> Case:
    return get(
        name,
        f"/v1/shelves/{shelf}/books?{query}",
        expect=listed(*book_names, request={"shelf": shelf, **request}, **kwargs),
    )


def local_error(
    name: str, method: str, path: str, status: int, body: bytes = b"", **kwargs: Any
) -> Case:
    """Envoy's own plain-text error: pinned by status only."""
    headers = {"content-type": JSON} if body else {}
    return Case(name, method, path, body, headers, status=status, content_type=TEXT, **kwargs)


SAME: list[Case] = [
    # -- path variables ----------------------------------------------------------------
    get("get-shelf", "/v1/shelves/1", expect={"id": "1", "theme": "Fiction", "name": "shelves/1"}),
    get(
        "get-shelf-unicode",
        "/v1/shelves/2",
        expect={"id": "2", "theme": "Po\u00e9sie & \u8a69", "name": "shelves/2"},
    ),
    get(
        "path-int64-beyond-float",
        f"/v1/shelves/{BIG}",
        expect={"id": BIG, "theme": "Big numbers", "name": f"shelves/{BIG}"},
    ),
    get(
        "path-int64-negative",
        "/v1/shelves/-1",
        status=404,
        expect=not_found("shelf", "shelves/-1", shelf="-1"),
    ),
    get("path-percent-encoded-digit", "/v1/shelves/%31", expect={"id": "1"}),
    get("path-trailing-slash", "/v1/shelves/1/", expect={"id": "1"}),
    local_error("path-int64-not-a-number", "GET", "/v1/shelves/abc", 400),
    local_error("path-int64-overflow", "GET", "/v1/shelves/9223372036854775808", 400),
    get("get-book", "/v1/shelves/1/books/1", expect=BOOK_1_1),
    get("get-book-unicode-bytes", "/v1/shelves/2/books/1", expect=BOOK_2_1),
    get(
        "get-book-int64-ids",
        f"/v1/shelves/{BIG}/books/{BIG}",
        expect={
            "name": f"shelves/{BIG}/books/{BIG}",
            "id": BIG,
            "title": "\u1f38\u03bb\u03b9\u03ac\u03c2",
            "isbnDigest": "f39/f39/f39/",
            "published": "1900-01-01T00:00:00Z",
            "rating": 5,
        },
    ),
    # -- errors with google.rpc details ------------------------------------------------
    get(
        "get-shelf-not-found-details",
        "/v1/shelves/42",
        status=404,
        expect=not_found("shelf", "shelves/42", shelf="42"),
    ),
    get(
        "get-book-not-found-details",
        "/v1/shelves/1/books/999",
        status=404,
        expect=not_found("book", "shelves/1/books/999", shelf="1", book="999"),
    ),
    send_json(
        "create-shelf-bad-request-details",
        "POST",
        "/v1/shelves",
        {},
        status=400,
        expect=bad_request("shelf.theme", "must not be empty"),
    ),
    # -- body: "field" -----------------------------------------------------------------
    send_json(
        "create-shelf-body-field",
        "POST",
        "/v1/shelves",
        {"theme": "Sci-Fi", "id": "7"},
        expect={"id": "7", "theme": "Sci-Fi", "name": "shelves/7"},
    ),
    send_json(
        "create-book-all-kinds",
        "POST",
        "/v1/shelves/1/books",
        {
            "title": "Neu \u2713 \U0001f4da",
            "isbnDigest": "AAEC/w==",
            "published": "2024-01-01T10:00:00.5+02:00",
            "pages": 0,
            "copiesSold": "18446744073709551615",
            "genre": 2,
            "labels": {"k": "v"},
            "id": int(BIG),
        },
        expect={
            "name": f"shelves/1/books/{BIG}",
            "id": BIG,
            "title": "Neu \u2713 \U0001f4da",
            "genre": "GENRE_HISTORY",
            "isbnDigest": "AAEC/w==",
            "published": "2024-01-01T08:00:00.500Z",
            "pages": 0,
            "copiesSold": "18446744073709551615",
            "labels": {"k": "v"},
            "author": ABSENT,
        },
    ),
    send_json(
        "create-book-urlsafe-base64",
        "POST",
        "/v1/shelves/1/books",
        {"title": "x", "isbnDigest": "-_8"},
        expect={"name": "shelves/1/books/100", "isbnDigest": "+/8="},
    ),
    send_json(
        "create-book-shelf-missing",
        "POST",
        "/v1/shelves/42/books",
        {"title": "x"},
        status=404,
        expect=not_found("shelf", "shelves/42", shelf="42"),
    ),
    Case(
        "empty-body-for-body-field",
        "POST",
        "/v1/shelves",
        b"",
        {"content-type": JSON},
        status=400,
        expect=bad_request("shelf.theme", "must not be empty"),
    ),
    # -- body: "*" with a path variable, custom verb -----------------------------------
    send_json(
        "custom-verb-body-star",
        "POST",
        "/v1/shelves/1:archive",
        {"reason": "full \u2014 \u6ee1", "purge": True},
        expect={
            "shelf": {"id": "1", "theme": "Fiction", "name": "shelves/1"},
            "reason": "full \u2014 \u6ee1",
            "purge": True,
            "archived": {
                "resourceType": "meshgate.test.v1.Shelf",
                "resourceName": "shelves/1",
                "owner": "archive",
                "description": "full \u2014 \u6ee1",
            },
        },
    ),
    send_json(
        "custom-verb-not-found",
        "POST",
        "/v1/shelves/42:archive",
        {},
        status=404,
        expect=not_found("shelf", "shelves/42", shelf="42"),
    ),
    send_json(
        "custom-verb-body-beats-path",
        "POST",
        "/v1/shelves/1:archive",
        {"shelf": "2"},
        expect={
            "shelf": {"id": "2", "name": "shelves/2"},
            "archived": {"resourceName": "shelves/2"},
        },
    ),
    local_error("unknown-verb-is-part-of-the-variable", "GET", "/v1/shelves/1:nope", 400),
    local_error("encoded-colon-is-part-of-the-variable", "GET", "/v1/shelves/1%3Aarchive", 400),
    Case(
        "custom-verb-empty-body",
        "POST",
        "/v1/shelves/2:archive",
        b"",
        {"content-type": JSON},
        expect={"shelf": {"id": "2"}, "reason": ABSENT},
    ),
    # -- query parameters --------------------------------------------------------------
    books_query(
        "query-page-size",
        "page_size=1",
        SHELF1[0],
        request={"pageSize": 1},
        next_page_token="after-1",
    ),
    books_query(
        "query-json-name",
        "pageSize=1",
        SHELF1[0],
        request={"pageSize": 1},
        next_page_token="after-1",
    ),
    books_query(
        "query-repeated-last-wins-for-singular",
        "page_size=1&page_size=2",
        *SHELF1[:2],
        request={"pageSize": 2},
        next_page_token="after-2",
    ),
    books_query(
        "query-repeated-strings",
        "tags=classic&tags=sf",
        *SHELF1[:2],
        request={"tags": ["classic", "sf"]},
    ),
    books_query(
        "query-repeated-encoded-comma-unicode",
        "tags=a%2Cb&tags=%E2%9C%93",
        request={"tags": ["a,b", "\u2713"]},
    ),
    books_query(
        "query-enum-by-name",
        "genre=GENRE_POETRY",
        "shelves/2/books/1",
        shelf="2",
        request={"genre": "GENRE_POETRY"},
    ),
    books_query(
        "query-enum-by-number",
        "genre=3",
        "shelves/2/books/1",
        shelf="2",
        request={"genre": "GENRE_POETRY"},
    ),
    books_query(
        "query-repeated-enum-mixed",
        "genres=GENRE_FICTION&genres=2",
        *SHELF1[:2],
        request={"genres": ["GENRE_FICTION", "GENRE_HISTORY"]},
    ),
    local_error("query-enum-unknown", "GET", "/v1/shelves/1/books?genre=NOPE", 400),
    local_error("query-enum-wrong-case", "GET", "/v1/shelves/1/books?genre=genre_poetry", 400),
    books_query(
        "query-timestamp",
        "published_after=2024-01-01T00:00:00Z",
        *SHELF1,
        request={"publishedAfter": "2024-01-01T00:00:00Z"},
    ),
    books_query(
        "query-timestamp-offset",
        "published_after=2024-01-01T10:00:00%2B02:00",
        *SHELF1,
        request={"publishedAfter": "2024-01-01T08:00:00Z"},
    ),
    local_error(
        "query-timestamp-invalid", "GET", "/v1/shelves/1/books?published_after=yesterday", 400
    ),
    books_query(
        "query-nested-field",
        "filter.author=Thomas%20Mann",
        SHELF1[1],
        request={"filter": {"author": "Thomas Mann"}},
    ),
    books_query(
        "query-nested-enum",
        "filter.genre=GENRE_FICTION",
        *SHELF1,
        request={"filter": {"genre": "GENRE_FICTION"}},
    ),
    local_error("query-message-field-as-scalar", "GET", "/v1/shelves/1/books?filter=x", 400),
    books_query(
        "query-field-mask",
        "update_mask=title,author",
        *SHELF1,
        request={"updateMask": "title,author"},
    ),
    books_query(
        "query-field-mask-repeated",
        "update_mask=title&update_mask=author",
        *SHELF1,
        request={"updateMask": "title,author"},
    ),
    books_query("query-wrapper-zero", "min_pages=0", *SHELF1, request={"minPages": 0}),
    books_query(
        "query-wrapper-string", "title_prefix=Der", SHELF1[1], request={"titlePrefix": "Der"}
    ),
    local_error("query-wrapper-empty-int", "GET", "/v1/shelves/1/books?min_pages=", 400),
    books_query("query-repeated-int64", f"ids=1&ids={BIG}", SHELF1[0], request={"ids": ["1", BIG]}),
    books_query(
        "query-uint64-max",
        "max_copies=18446744073709551615",
        *SHELF1,
        request={"maxCopies": "18446744073709551615"},
    ),
    books_query("query-double", "min_rating=4.5", *SHELF1, request={"minRating": 4.5}),
    books_query("query-bool", "include_drafts=true", *SHELF1, request={"includeDrafts": True}),
    books_query(
        "query-bool-without-value", "include_drafts", *SHELF1, request={"includeDrafts": ABSENT}
    ),
    books_query(
        "query-bytes-base64", "cursor=AAECAw%3D%3D", *SHELF1, request={"cursor": "AAECAw=="}
    ),
    books_query("query-bytes-urlsafe-unpadded", "cursor=-_8", *SHELF1, request={"cursor": "+/8="}),
    local_error("query-bytes-invalid", "GET", "/v1/shelves/1/books?cursor=!!!", 400),
    books_query(
        "query-unicode-percent-encoded",
        "page_token=%E2%9C%93%20ok",
        *SHELF1,
        request={"pageToken": "\u2713 ok"},
    ),
    books_query("query-plus-is-not-space", "page_token=a+b", *SHELF1, request={"pageToken": "a+b"}),
    books_query("query-empty-string", "page_token=", *SHELF1, request={"pageToken": ABSENT}),
    local_error("query-int32-not-a-number", "GET", "/v1/shelves/1/books?page_size=abc", 400),
    local_error("query-int32-overflow", "GET", "/v1/shelves/1/books?page_size=2147483648", 400),
    books_query(
        "query-overrides-path-variable",
        "shelf=2",
        "shelves/2/books/1",
        shelf="1",
        request={"shelf": "2"},
    ),
    get(
        "query-backend-rejects",
        "/v1/shelves/1/books?page_size=-1",
        status=400,
        expect=bad_request("page_size", "must not be negative"),
    ),
    # -- PATCH with a nested field path (book.name=shelves/*/books/*) --------------------
    send_json(
        "patch-nested-path-with-mask",
        "PATCH",
        "/v1/shelves/1/books/2?update_mask=title",
        {"title": "Der Zauberberg (neu)", "tags": ["x"]},
        expect={
            "name": "shelves/1/books/2",
            "title": "Der Zauberberg (neu)",
            "tags": ["classic"],
            "author": "Thomas Mann",
        },
    ),
    send_json(
        "patch-mask-json-name-list",
        "PATCH",
        "/v1/shelves/1/books/2?updateMask=title,tags",
        {"title": "T", "tags": ["x"]},
        expect={"name": "shelves/1/books/2", "title": "T", "tags": ["x"]},
    ),
    send_json(
        "patch-without-mask-null-field",
        "PATCH",
        "/v1/shelves/1/books/1",
        {"rating": 3, "pages": None},
        expect={**BOOK_1_1, "rating": 3},
    ),
    send_json(
        "patch-body-name-beats-path",
        "PATCH",
        "/v1/shelves/1/books/1",
        {"name": "shelves/2/books/1", "title": "x"},
        expect={**BOOK_2_1, "title": "x"},
    ),
    send_json(
        "patch-not-found",
        "PATCH",
        "/v1/shelves/1/books/77",
        {},
        status=404,
        expect=not_found("book", "shelves/1/books/77", shelf="1", book="77"),
    ),
    send_json(
        "patch-non-numeric-name",
        "PATCH",
        "/v1/shelves/x/books/y",
        {},
        status=400,
        expect=bad_request("book.name", "not shelves/<int>/books/<int>: 'shelves/x/books/y'"),
    ),
    local_error("patch-too-many-segments", "PATCH", "/v1/shelves/1/books/1/extra", 404, b"{}"),
    # -- DELETE returning google.protobuf.Empty ------------------------------------------
    Case("delete-returns-empty", "DELETE", "/v1/shelves/1/books/1", expect={}),
    Case(
        "delete-not-found",
        "DELETE",
        "/v1/shelves/1/books/999",
        status=404,
        expect=not_found("book", "shelves/1/books/999", shelf="1", book="999"),
    ),
    # -- additional_bindings -----------------------------------------------------------
    get(
        "binding-primary-get",
        "/v1/books/isbn/978-0441478125",
        expect={"request": {"isbn": "978-0441478125"}, "book": BOOK_1_1},
    ),
    get(
        "binding-single-segment-encoded-slash",
        "/v1/books/isbn/a%2Fb",
        expect={"request": {"isbn": "a/b"}, "book": ABSENT},
    ),
    get(
        "binding-single-segment-unicode",
        "/v1/books/isbn/a%20b%E2%82%AC",
        expect={"request": {"isbn": "a b\u20ac"}},
    ),
    get(
        "binding-additional-get",
        "/v1/shelves/1/books:lookup?title=Der%20Zauberberg",
        expect={
            "request": {"shelf": "1", "title": "Der Zauberberg"},
            "book": {"name": "shelves/1/books/2"},
        },
    ),
    send_json(
        "binding-additional-post-body-star",
        "POST",
        "/v1/books:lookup",
        {"shelf": "2", "title": "\u6625\u671b \U0001f338"},
        expect={"request": {"shelf": "2", "title": "\u6625\u671b \U0001f338"}, "book": BOOK_2_1},
    ),
    # -- ** ----------------------------------------------------------------------------
    get(
        "double-star-segments",
        "/v1/files/a/b/c.txt",
        expect={"path": "a/b/c.txt", "segments": ["a", "b", "c.txt"]},
    ),
    get(
        "double-star-one-segment",
        "/v1/files/readme",
        expect={"path": "readme", "segments": ["readme"]},
    ),
    get(
        "double-star-percent-decoded",
        "/v1/files/dir%20one/%E2%82%AC.txt",
        expect={"path": "dir one/\u20ac.txt", "segments": ["dir one", "\u20ac.txt"]},
    ),
    get(
        "double-star-keeps-encoded-slash",
        "/v1/files/a%2Fb/c",
        expect={"path": "a%2Fb/c", "segments": ["a%2Fb", "c"]},
    ),
    get(
        "double-star-reserved-stay-encoded",
        "/v1/files/%3A%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%25",
        expect={"path": "%3A%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%"},
    ),
    get(
        "double-star-with-query",
        "/v1/files/a/b?revision=r1",
        expect={"path": "a/b", "revision": "r1"},
    ),
    get("double-star-trailing-slash", "/v1/files/a/b/", expect={"path": "a/b"}),
    get("double-star-colon-in-segment", "/v1/files/a:b", expect={"path": "a:b"}),
    get("double-star-matches-nothing", "/v1/files", expect={}),
    # -- response_body naming a google.api.HttpBody field ------------------------------
    get(
        "response-body-httpbody-field",
        "/v1/shelves/2:export",
        content_type="text/csv; charset=utf-8",
        raw="id,title,author\n1,\u6625\u671b \U0001f338,\u675c\u752b\n".encode(),
    ),
    get(
        "response-body-error",
        "/v1/shelves/42:export",
        status=404,
        expect=not_found("shelf", "shelves/42", shelf="42"),
    ),
    # -- google.api.HttpBody response and request ---------------------------------------
    get("httpbody-response", "/v1/shelves/1/cover", content_type="image/png", raw=COVER_PNG),
    get(
        "httpbody-response-content-type",
        "/v1/shelves/1/cover?content_type=text/plain%3Bcharset%3Dutf-8",
        content_type="text/plain;charset=utf-8",
        raw=COVER_PNG,
    ),
    get(
        "httpbody-response-error",
        "/v1/shelves/42/cover",
        status=404,
        expect=not_found("shelf", "shelves/42", shelf="42"),
    ),
    Case(
        "httpbody-request",
        "POST",
        "/v1/shelves/1/cover",
        b"\x89PNG\r\n\x1a\n\x00\xff",
        {"content-type": "image/png"},
        expect={"shelf": "1", "contentType": "image/png", "size": "10", "data": "iVBORw0KGgoA/w=="},
    ),
    Case(
        "httpbody-request-json-is-not-parsed",
        "POST",
        "/v1/shelves/1/cover",
        b"{not json",
        {"content-type": JSON},
        expect={"shelf": "1", "contentType": JSON, "size": "9", "data": "e25vdCBqc29u"},
    ),
    Case(
        "httpbody-request-query-beats-path",
        "POST",
        "/v1/shelves/1/cover?shelf=2",
        b"hello",
        {"content-type": "text/plain"},
        expect={"shelf": "2", "contentType": "text/plain", "size": "5", "data": "aGVsbG8="},
    ),
    Case(
        "httpbody-request-empty",
        "POST",
        "/v1/shelves/1/cover",
        b"",
        {"content-type": "application/octet-stream"},
        expect={
            "shelf": "1",
            "contentType": "application/octet-stream",
            "size": ABSENT,
            "data": ABSENT,
        },
    ),
    # -- server streaming: a JSON array --------------------------------------------------
    get(
        "stream-array",
        "/v1/shelves/1/books:stream?count=3",
        expect=[
            {
                "name": f"shelves/1/books/{i}",
                "id": str(i),
                "title": f"Volume {i} \u2014 \u7b2c{i}\u5377",
            }
            for i in (1, 2, 3)
        ],
    ),
    get(
        "stream-error-before-first-message",
        "/v1/shelves/1/books:stream?count=101",
        status=400,
        expect=bad_request("count", "must be in 1..100"),
    ),
    # -- requests that match nothing ----------------------------------------------------
    local_error("unmatched-path", "GET", "/v2/nothing", 404),
    local_error("unmatched-root", "GET", "/", 404),
    # -- malformed bodies ----------------------------------------------------------------
    local_error("malformed-json-body", "POST", "/v1/shelves", 400, b"{not json"),
    local_error("body-wrong-type", "POST", "/v1/shelves", 400, b'{"id":"abc"}'),
    local_error("body-array-root", "POST", "/v1/shelves", 400, b"[1]"),
    local_error("body-star-malformed", "POST", "/v1/books:lookup", 400, b'{"shelf":'),
]

# name -> (meshgate status, Envoy status, why meshgate differs)
DIFFERENCES: dict[str, tuple[int, int, str]] = {
    "wrong-method-put": (
        405,
        404,
        "Envoy cannot tell a known path from an unknown one; "
        "meshgate answers 405 with Allow listing the methods the path has",
    ),
    "wrong-method-delete": (405, 404, "as wrong-method-put"),
    "wrong-method-post": (405, 404, "as wrong-method-put"),
    "wrong-method-get-on-collection": (405, 404, "as wrong-method-put"),
    "wrong-method-get-on-post-binding": (405, 404, "as wrong-method-put"),
    "wrong-method-get-on-custom-verb": (405, 404, "as wrong-method-put"),
    "wrong-method-post-encoded-colon": (
        405,
        404,
        "as wrong-method-put: %3A is no verb separator, so the path is GET /v1/shelves/{shelf}",
    ),
    "wrong-method-post-unknown-verb": (
        405,
        404,
        "as wrong-method-post-encoded-colon: an unregistered verb stays part of the last segment",
    ),
    "unknown-query-parameter": (
        400,
        503,
        "Envoy passes a request whose query names no field "
        "through to the gRPC backend as raw JSON, which resets it; "
        "meshgate rejects the unknown field, as it does in JSON bodies",
    ),
    "unknown-nested-query-parameter": (400, 503, "as unknown-query-parameter"),
    "unknown-body-field": (
        400,
        200,
        "proto3 JSON rejects unknown fields by default; the "
        "route option ignore_unknown_fields gives Envoy's leniency",
    ),
    "stream-error-after-first-message": (
        200,
        200,
        "Envoy ends the array after the messages "
        "sent so far and the failure is lost over HTTP/1.1; "
        'meshgate appends {"error": {code, message}}',
    ),
}
DIFFERENT: list[Case] = [
    Case("wrong-method-put", "PUT", "/v1/shelves/1", b"{}", {"content-type": JSON}),
    Case("wrong-method-delete", "DELETE", "/v1/shelves/1"),
    Case("wrong-method-post", "POST", "/v1/shelves/1", b"{}", {"content-type": JSON}),
    Case("wrong-method-get-on-collection", "GET", "/v1/shelves"),
    Case("wrong-method-get-on-post-binding", "GET", "/v1/books:lookup"),
    Case("wrong-method-get-on-custom-verb", "GET", "/v1/shelves/1:archive"),
    send_json("wrong-method-post-encoded-colon", "POST", "/v1/shelves/1%3Aarchive", {}),
    send_json("wrong-method-post-unknown-verb", "POST", "/v1/shelves/1:nope", {}),
    get("unknown-query-parameter", "/v1/shelves/1/books?zzz=1"),
    get("unknown-nested-query-parameter", "/v1/shelves/1/books?filter.nope=1"),
    send_json("unknown-body-field", "POST", "/v1/shelves", {"theme": "x", "nope": 1}),
    get(
        "stream-error-after-first-message",
        "/v1/shelves/1/books:stream?count=2&fail_code=5&fail_message=gone",
    ),
]
WRONG_METHOD_ALLOW = {
    "wrong-method-put": "GET",
    "wrong-method-delete": "GET",
    "wrong-method-post": "GET",
    "wrong-method-get-on-collection": "POST",
    "wrong-method-get-on-post-binding": "POST",
    "wrong-method-get-on-custom-verb": "POST",
    "wrong-method-post-encoded-colon": "GET",
    "wrong-method-post-unknown-verb": "GET",
}
STATUS_CODES = {400: 3, 404: 5, 405: 12, 503: 14}


def meshgate_config(
    descriptors: Path, backend_port: int, services: tuple[str, ...] = (SERVICE,)
) -> dict[str, Any]:
    return {
        "descriptors": [{"file": str(descriptors)}],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "transcode": {"services": list(services)},
                        "cluster": "bookstore",
                        "timeout": f"{ROUTE_TIMEOUT_SECONDS:g}s",
                    }
                ],
            }
        ],
        "clusters": [
            {"name": "bookstore", "endpoints": [{"address": f"127.0.0.1:{backend_port}"}]}
        ],
    }


@pytest.fixture(scope="module")
def bookstore_port() -> Iterator[int]:
    port = free_port()
    with running(
        python_module("tests.support.bookstore_backend", "--port", str(port)), "READY", timeout=30.0
    ):
        yield port


@pytest.fixture(scope="module")
def envoy(bookstore_port: int) -> Iterator[httpx.Client]:
    config = transcoder_config(
        free_port(),
        free_port(),
        bookstore_port,
        bookstore_descriptor_set(),
        [SERVICE],
        route_timeout=ROUTE_TIMEOUT_SECONDS,
        auto_mapping=False,
        convert_grpc_status=True,
        reject_unknown_method=True,
    )
    with (
        run_envoy(config) as running_envoy,
        httpx.Client(base_url=running_envoy.listen_url, timeout=10.0) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def meshgate(
    bookstore_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    config = meshgate_config(bookstore_descriptor_set(), bookstore_port)
    with (
        run_gateway(config, tmp_path_factory.mktemp("rest-diff")) as gateway,
        gateway.client() as client,
    ):
        yield client


def send(client: httpx.Client, case: Case) -> httpx.Response:
    return client.request(case.method, case.path, content=case.body, headers=case.headers)


def media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";", 1)[0].strip()


def normalized_json(response: httpx.Response) -> Any:
    if media_type(response) != JSON:
        return None
    body = orjson.loads(response.content)
    if isinstance(body, dict) and "code" in body:
        # meshgate's errors name the request ID; Envoy's do not.
        body.pop("request_id", None)
        if body.get("details") == []:
            body = {k: v for k, v in body.items() if k != "details"}
    return body


def check_pinned(actual: Any, expected: Any, where: str = "$") -> None:
    """``actual`` agrees with the pinned ``expected`` (see the module docstring)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if value is ABSENT:
                assert key not in actual, f"{where}.{key} should be absent: {actual[key]!r}"
            else:
                assert key in actual, f"{where}.{key} missing from {actual!r}"
                check_pinned(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected an array, got {actual!r}"
        assert len(actual) == len(expected), f"{where}: {actual!r} vs {expected!r}"
        for i, (item, want) in enumerate(zip(actual, expected, strict=True)):
            check_pinned(item, want, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def case_ids(case: Case) -> str:
    return case.name


def test_case_names_are_unique() -> None:
    all_names = [c.name for c in SAME + DIFFERENT]
    assert len(all_names) == len(set(all_names))
    assert {c.name for c in DIFFERENT} == set(DIFFERENCES)
    assert len(SAME) >= 40


@pytest.mark.parametrize("case", SAME, ids=case_ids)
def test_envoy_reference(envoy: httpx.Client, case: Case) -> None:
    """Envoy still answers as pinned: the reference the meshgate comparison relies on."""
    answer = send(envoy, case)
    assert answer.status_code == case.status, answer.text
    assert answer.headers.get("content-type") == case.content_type, answer.headers
    if case.raw is not None:
        assert answer.content == case.raw
    if case.expect is not None:
        check_pinned(normalized_json(answer), case.expect)


@pytest.mark.parametrize("case", SAME, ids=case_ids)
def test_same_answer_as_envoy(envoy: httpx.Client, meshgate: httpx.Client, case: Case) -> None:
    reference = send(envoy, case)
    mine = send(meshgate, case)
    assert mine.status_code == reference.status_code, (reference.text, mine.text)
    if case.raw is not None or case.content_type not in (JSON, TEXT):
        # google.api.HttpBody: the bytes and the content-type as the backend gave them.
        assert mine.headers.get("content-type") == reference.headers.get("content-type")
        assert mine.content == reference.content
        return
    # meshgate always answers JSON, also where Envoy's local replies are plain text.
    assert media_type(mine) == JSON, mine.headers
    expected = normalized_json(reference)
    if expected is not None:
        assert normalized_json(mine) == expected
    else:
        error = mine.json()
        assert error["code"] == STATUS_CODES[mine.status_code], error
        assert isinstance(error["message"], str) and error["message"], error


@pytest.mark.parametrize("case", DIFFERENT, ids=case_ids)
def test_documented_differences(envoy: httpx.Client, meshgate: httpx.Client, case: Case) -> None:
    mine_status, envoy_status, _why = DIFFERENCES[case.name]
    reference = send(envoy, case)
    assert reference.status_code == envoy_status, reference.text
    mine = send(meshgate, case)
    assert mine.status_code == mine_status, mine.text
    assert media_type(mine) == JSON, mine.headers
    body = mine.json()
    if case.name in WRONG_METHOD_ALLOW:
        allowed = {m.strip() for m in mine.headers.get("allow", "").split(",")}
        assert allowed == {WRONG_METHOD_ALLOW[case.name]}, mine.headers
        assert case.method not in allowed
        assert body["code"] == 12
    elif case.name == "stream-error-after-first-message":
        # Envoy: the two messages, then a silent end of the array.
        assert [m["id"] for m in reference.json()] == ["1", "2"]
        assert body[:2] == reference.json()
        assert len(body) == 3 and set(body[2]) == {"error"}, body
        error = {
            k: v
            for k, v in body[2]["error"].items()
            if (k, v) != ("details", []) and k != "request_id"
        }
        assert error == {"code": 5, "message": "gone"}, body
    else:
        assert body["code"] == STATUS_CODES[mine_status], body
        assert "zzz" in body["message"] or "nope" in body["message"], body


def test_differences_are_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [name for name in DIFFERENCES if f"`{name}`" not in readme]
    assert not missing, f"README must document the differences {missing}"


def test_response_body_message_field_meshgate_only(bookstore_port: int, tmp_path: Path) -> None:
    """``response_body: "books"`` (not an HttpBody): Envoy refuses to load it at all.

    Envoy 1.40 fails its config with 'Setting "response_body" is not supported yet
    for non-HttpBody fields', so BookstoreExtras has no Envoy reference; meshgate
    answers the field alone, as the google.api.http spec says.
    """
    config = meshgate_config(
        bookstore_descriptor_set(), bookstore_port, services=(SERVICE, EXTRAS_SERVICE)
    )
    with run_gateway(config, tmp_path) as gateway, gateway.client() as client:
        found = client.get("/v1/books:search", params={"shelf": "1", "tags": "classic"})
        assert found.status_code == 200, found.text
        check_pinned(found.json(), names(*SHELF1[:2]))
        assert found.json()[0] == BOOK_1_1
        everything = client.get("/v1/books:search")
        assert [b["name"] for b in everything.json()] == [
            *SHELF1,
            "shelves/2/books/1",
            f"shelves/{BIG}/books/{BIG}",
        ]
        # No books: the field is an empty list, which proto3 JSON writes as [].
        none = client.get("/v1/books:search", params={"shelf": "77"})
        assert none.status_code == 200
        assert none.json() == []
        failed = client.get("/v1/books:search", params={"page_size": "-1"})
        assert failed.status_code == 400
        check_pinned(normalized_json(failed), bad_request("page_size", "must not be negative"))
