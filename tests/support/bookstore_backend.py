"""The tests' REST backend: meshgate.test.v1.Bookstore on grpc.aio.

Run as a process so the gateways under test talk to it over real sockets::

    python -m tests.support.bookstore_backend --port 50051

Messages come from bookstore.proto compiled at start-up, so no generated code
is kept in the repository. The data is fixed and never changes: mutating
calls (create, update, delete, archive, upload) answer with what they would
have stored, so every request gets the same answer whichever gateway sends it
and in whatever order the tests run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import grpc
from google.protobuf import any_pb2
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection

from tests.support.grpc_server import serve_until_signalled
from tests.support.protos import compile_descriptor_set, load_pool, message_class

BOOKSTORE_PROTO = "meshgate/test/v1/bookstore.proto"
PACKAGE = "meshgate.test.v1"
SERVICE = f"{PACKAGE}.Bookstore"
EXTRAS_SERVICE = f"{PACKAGE}.BookstoreExtras"

# A valid 1x1 transparent PNG: the cover every shelf has.
COVER_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
MAX_STREAM_COUNT = 100
MAX_DELAY_SECONDS = 5.0

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


@functools.cache
def bookstore_descriptor_set() -> Path:
    """bookstore.proto's FileDescriptorSet (with imports), compiled once per process."""
    out = Path(tempfile.mkdtemp(prefix="meshgate-bookstore-")) / "bookstore.pb"
    return compile_descriptor_set(BOOKSTORE_PROTO, out)


@dataclass(frozen=True)
class ShelfData:
    id: int
    theme: str


@dataclass(frozen=True)
class BookData:
    shelf: int
    id: int
    title: str
    author: str
    genre: int
    tags: tuple[str, ...]
    isbn_digest: bytes
    published: str
    pages: int | None
    copies_sold: int
    rating: float
    labels: tuple[tuple[str, str], ...]


SHELVES = (
    ShelfData(1, "Fiction"),
    ShelfData(2, "Po\u00e9sie & \u8a69"),
    ShelfData(9007199254740993, "Big numbers"),
)
BOOKS = (
    BookData(
        1,
        1,
        "The Left Hand of Darkness",
        "Ursula K. Le Guin",
        1,
        ("classic", "sf"),
        b"\x00\x01\xfe\xff",
        "1969-03-01T00:00:00Z",
        304,
        1234567890123,
        4.5,
        (("isbn", "978-0441478125"), ("lang", "en")),
    ),
    BookData(
        1,
        2,
        "Der Zauberberg",
        "Thomas Mann",
        1,
        ("classic",),
        b"\xfb\xff\xbf",
        "1924-11-20T12:30:00.250Z",
        1000,
        0,
        4.0,
        (("isbn", "978-3596294336"),),
    ),
    BookData(
        1,
        3,
        "Draft \u2014 untitled",
        "",
        0,
        (),
        b"",
        "2024-02-29T23:59:59.123456789Z",
        None,
        18446744073709551615,
        0.0,
        (),
    ),
    BookData(
        2,
        1,
        "\u6625\u671b \U0001f338",
        "\u675c\u752b",
        3,
        ("t\u00e0ng", "poetry"),
        "\u6625".encode(),
        "0757-04-01T00:00:00Z",
        1,
        12,
        -0.5,
        (("lang", "zh"), ("isbn", "none")),
    ),
    BookData(
        9007199254740993,
        9007199254740993,
        "\u1f38\u03bb\u03b9\u03ac\u03c2",
        "Homer",
        2,
        ("epic",),
        b"\x7f" * 9,
        "1900-01-01T00:00:00Z",
        683,
        7,
        5.0,
        (),
    ),
)


class RpcError(Exception):
    """Fail the call with ``code``, a message and google.rpc details."""

    def __init__(self, code: grpc.StatusCode, message: str, details: Sequence[Message] = ()):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = tuple(details)


async def abort(context: Context, error: RpcError) -> None:
    if error.details:
        packed = []
        for detail in error.details:
            holder = any_pb2.Any()
            holder.Pack(detail)
            packed.append(holder)
        status = status_pb2.Status(code=error.code.value[0], message=error.message, details=packed)
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    await context.abort(error.code, error.message)


def not_found(kind: str, name: str, **metadata: str) -> RpcError:
    return RpcError(
        grpc.StatusCode.NOT_FOUND,
        f"{kind} {name} not found",
        [
            error_details_pb2.ResourceInfo(
                resource_type=f"{PACKAGE}.{kind.capitalize()}",
                resource_name=name,
                description=f"no such {kind}",
            ),
            error_details_pb2.ErrorInfo(
                reason=f"{kind.upper()}_NOT_FOUND",
                domain="bookstore.meshgate.test",
                metadata=metadata,
            ),
        ],
    )


def bad_request(field: str, description: str) -> RpcError:
    return RpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid {field}: {description}",
        [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=field, description=description
                    )
                ]
            )
        ],
    )


class Bookstore:
    """The RPCs over dynamic message classes from ``pool``."""

    def __init__(self, pool: DescriptorPool) -> None:
        self.pool = pool
        self.cls: dict[str, type[Message]] = {}

    def new(self, type_name: str, /, **fields: Any) -> Any:
        full = type_name if "." in type_name else f"{PACKAGE}.{type_name}"
        if full not in self.cls:
            self.cls[full] = message_class(self.pool, full)
        return self.cls[full](**fields)

    # -- data -------------------------------------------------------------

    def shelf(self, shelf_id: int) -> Any:
        for data in SHELVES:
            if data.id == shelf_id:
                return self.new("Shelf", id=data.id, theme=data.theme, name=f"shelves/{data.id}")
        raise not_found("shelf", f"shelves/{shelf_id}", shelf=str(shelf_id))

    def book(self, data: BookData) -> Any:
        book = self.new(
            "Book",
            name=f"shelves/{data.shelf}/books/{data.id}",
            id=data.id,
            title=data.title,
            author=data.author,
            genre=data.genre,
            tags=list(data.tags),
            isbn_digest=data.isbn_digest,
            copies_sold=data.copies_sold,
            rating=data.rating,
            labels=dict(data.labels),
        )
        book.published.FromJsonString(data.published)
        if data.pages is not None:
            book.pages.value = data.pages
        return book

    def find_book(self, shelf_id: int, book_id: int) -> Any:
        for data in BOOKS:
            if data.shelf == shelf_id and data.id == book_id:
                return self.book(data)
        raise not_found(
            "book", f"shelves/{shelf_id}/books/{book_id}", shelf=str(shelf_id), book=str(book_id)
        )

    def select_books(self, request: Any, *, any_shelf: bool) -> Any:
        selected = []
        for data in BOOKS:
            if not (any_shelf and request.shelf == 0) and data.shelf != request.shelf:
                continue
            if request.genre and data.genre != request.genre:
                continue
            if request.genres and data.genre not in request.genres:
                continue
            if request.tags and not set(request.tags) & set(data.tags):
                continue
            if request.filter.author and request.filter.author != data.author:
                continue
            if request.ids and data.id not in request.ids:
                continue
            if request.HasField("title_prefix") and not data.title.startswith(
                request.title_prefix.value
            ):
                continue
            selected.append(self.book(data))
        reply = self.new("ListBooksResponse")
        limit = request.page_size if request.page_size > 0 else len(selected)
        reply.books.extend(selected[:limit])
        if len(selected) > limit:
            reply.next_page_token = f"after-{limit}"
        reply.request.CopyFrom(request)
        return reply

    # -- RPCs -------------------------------------------------------------

    async def get_shelf(self, request: Any, context: Context) -> Any:
        return self.shelf(request.shelf)

    async def create_shelf(self, request: Any, context: Context) -> Any:
        if not request.shelf.theme:
            raise bad_request("shelf.theme", "must not be empty")
        shelf_id = request.shelf.id or 100
        return self.new("Shelf", id=shelf_id, theme=request.shelf.theme, name=f"shelves/{shelf_id}")

    async def archive_shelf(self, request: Any, context: Context) -> Any:
        shelf = self.shelf(request.shelf)
        reply = self.new("ArchiveShelfResponse", reason=request.reason, purge=request.purge)
        reply.shelf.CopyFrom(shelf)
        reply.archived.CopyFrom(
            self.new(
                "google.rpc.ResourceInfo",
                resource_type=f"{PACKAGE}.Shelf",
                resource_name=shelf.name,
                owner="archive",
                description=request.reason,
            )
        )
        return reply

    async def list_books(self, request: Any, context: Context) -> Any:
        return self.list_books_reply(request, any_shelf=False)

    async def search_books(self, request: Any, context: Context) -> Any:
        return self.list_books_reply(request, any_shelf=True)

    def list_books_reply(self, request: Any, *, any_shelf: bool) -> Any:
        if request.page_size < 0:
            raise bad_request("page_size", "must not be negative")
        return self.select_books(request, any_shelf=any_shelf)

    async def export_shelf(self, request: Any, context: Context) -> Any:
        self.shelf(request.shelf)
        lines = ["id,title,author"]
        lines += [
            f"{data.id},{data.title},{data.author}" for data in BOOKS if data.shelf == request.shelf
        ]
        reply = self.new("ExportShelfResponse", shelf=request.shelf)
        reply.export.content_type = "text/csv; charset=utf-8"
        reply.export.data = ("\n".join(lines) + "\n").encode()
        return reply

    async def get_book(self, request: Any, context: Context) -> Any:
        return self.find_book(request.shelf, request.book)

    async def create_book(self, request: Any, context: Context) -> Any:
        self.shelf(request.shelf)
        if not request.book.title:
            raise bad_request("book.title", "must not be empty")
        book = self.new("Book")
        book.CopyFrom(request.book)
        book.id = book.id or 100
        book.name = f"shelves/{request.shelf}/books/{book.id}"
        return book

    async def update_book(self, request: Any, context: Context) -> Any:
        parts = request.book.name.split("/")
        if (
            len(parts) != 4
            or parts[0] != "shelves"
            or parts[2] != "books"
            or not all(p.lstrip("-").isdigit() for p in (parts[1], parts[3]))
        ):
            raise bad_request("book.name", f"not shelves/<int>/books/<int>: {request.book.name!r}")
        book = self.find_book(int(parts[1]), int(parts[3]))
        if request.update_mask.paths:
            for path in request.update_mask.paths:
                field = book.DESCRIPTOR.fields_by_name.get(path)
                if field is None or path in ("name", "id"):
                    raise bad_request("update_mask", f"cannot update {path!r}")
                book.ClearField(path)
                if field.is_repeated:
                    getattr(book, path).MergeFrom(getattr(request.book, path))
                elif field.message_type is not None:
                    if request.book.HasField(path):
                        getattr(book, path).CopyFrom(getattr(request.book, path))
                else:
                    setattr(book, path, getattr(request.book, path))
        else:
            name = book.name
            book.MergeFrom(request.book)
            book.name = name
        return book

    async def delete_book(self, request: Any, context: Context) -> Any:
        self.find_book(request.shelf, request.book)
        return self.new("google.protobuf.Empty")

    async def lookup_book(self, request: Any, context: Context) -> Any:
        reply = self.new("LookupBookResponse")
        reply.request.CopyFrom(request)
        for data in BOOKS:
            by_isbn = request.isbn and dict(data.labels).get("isbn") == request.isbn
            by_title = request.title and data.shelf == request.shelf and data.title == request.title
            if by_isbn or by_title:
                reply.book.CopyFrom(self.book(data))
                break
        return reply

    async def get_file(self, request: Any, context: Context) -> Any:
        return self.new(
            "File",
            path=request.path,
            revision=request.revision,
            segments=request.path.split("/") if request.path else [],
        )

    async def stream_books(self, request: Any, context: Context) -> AsyncIterator[Any]:
        count = request.count or 3
        if not 0 < count <= MAX_STREAM_COUNT:
            raise bad_request("count", f"must be in 1..{MAX_STREAM_COUNT}")
        delay = min(max(request.delay_seconds, 0.0), MAX_DELAY_SECONDS)
        for i in range(1, count + 1):
            if i > 1 and delay:
                await asyncio.sleep(delay)
            yield self.new(
                "Book",
                name=f"shelves/{request.shelf}/books/{i}",
                id=i,
                title=f"Volume {i} \u2014 \u7b2c{i}\u5377",
            )
        if request.fail_code:
            code = _status_code(request.fail_code)
            raise RpcError(code, request.fail_message or f"stream failed with {code.name}")

    async def get_cover(self, request: Any, context: Context) -> Any:
        self.shelf(request.shelf)
        return self.new(
            "google.api.HttpBody", content_type=request.content_type or "image/png", data=COVER_PNG
        )

    async def upload_cover(self, request: Any, context: Context) -> Any:
        self.shelf(request.shelf)
        return self.new(
            "UploadCoverResponse",
            shelf=request.shelf,
            content_type=request.cover.content_type,
            size=len(request.cover.data),
            data=request.cover.data,
        )


def _status_code(code: int) -> grpc.StatusCode:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    raise bad_request("fail_code", f"not a gRPC status code: {code}")


def _unary(
    fn: Callable[[Any, Context], Awaitable[Any]],
) -> Callable[[Any, Context], Awaitable[Any]]:
    async def handler(request: Any, context: Context) -> Any:
        try:
            return await fn(request, context)
        except RpcError as error:
            await abort(context, error)

    return handler


def _streaming(
    fn: Callable[[Any, Context], AsyncIterator[Any]],
) -> Callable[[Any, Context], AsyncIterator[Any]]:
    async def handler(request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            async for reply in fn(request, context):
                yield reply
        except RpcError as error:
            await abort(context, error)

    return handler


def build_handlers(pool: DescriptorPool) -> tuple[grpc.GenericRpcHandler, ...]:
    store = Bookstore(pool)
    unary = {
        "GetShelf": store.get_shelf,
        "CreateShelf": store.create_shelf,
        "ArchiveShelf": store.archive_shelf,
        "ListBooks": store.list_books,
        "SearchBooks": store.search_books,
        "ExportShelf": store.export_shelf,
        "GetBook": store.get_book,
        "CreateBook": store.create_book,
        "UpdateBook": store.update_book,
        "DeleteBook": store.delete_book,
        "LookupBook": store.lookup_book,
        "GetFile": store.get_file,
        "GetCover": store.get_cover,
        "UploadCover": store.upload_cover,
    }
    return tuple(
        _service_handler(pool, name, unary, store.stream_books)
        for name in (SERVICE, EXTRAS_SERVICE)
    )


def _service_handler(
    pool: DescriptorPool,
    service_name: str,
    unary: Mapping[str, Callable[[Any, Context], Awaitable[Any]]],
    stream: Callable[[Any, Context], AsyncIterator[Any]],
) -> grpc.GenericRpcHandler:
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in pool.FindServiceByName(service_name).methods:
        request_cls = message_class(pool, method.input_type.full_name)
        reply_cls = message_class(pool, method.output_type.full_name)
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _streaming(stream),
                request_deserializer=request_cls.FromString,
                response_serializer=reply_cls.SerializeToString,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(unary[method.name]),
                request_deserializer=request_cls.FromString,
                response_serializer=reply_cls.SerializeToString,
            )
    return grpc.method_handlers_generic_handler(service_name, handlers)


async def serve(port: int, host: str = "127.0.0.1") -> None:
    server = grpc.aio.server()
    pool = load_pool(bookstore_descriptor_set())
    server.add_generic_rpc_handlers(build_handlers(pool))
    reflection.enable_server_reflection(
        (SERVICE, EXTRAS_SERVICE, reflection.SERVICE_NAME), server, pool=pool
    )
    await serve_until_signalled(server, f"{host}:{port}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
