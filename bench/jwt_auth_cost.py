"""Cost of the jwt_auth filter per request, by algorithm, with and without
its verified-token cache (in process, no sockets).

    .venv/bin/python -m bench.jwt_auth_cost [requests]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from filters import build_filter
from filters.http import HttpRequest, HttpResponse
from tests.support.jose import ALGORITHMS, AUDIENCE, ISSUER, SigningKeys


async def _ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse(200)


async def measure(requests: int) -> None:
    keys = SigningKeys.generate("bench")
    jwks = Path(tempfile.mkdtemp()) / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))
    for cache_size in (0, 1000):
        provider = {
            "name": "bench",
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "jwks": {"file": str(jwks)},
            "cache_size": cache_size,
        }
        handler = build_filter("jwt_auth", {"providers": [provider]})(_ok)
        for algorithm in ALGORITHMS:
            headers = [("authorization", f"Bearer {keys.token(algorithm)}")]
            started = time.perf_counter()
            for _ in range(requests):
                response = await handler(HttpRequest("GET", "/", b"", headers))
                assert response.status == 200
            each = (time.perf_counter() - started) / requests * 1e6
            print(f"cache_size={cache_size:<5} {algorithm:<6} {each:8.0f} us/request")


if __name__ == "__main__":
    asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
