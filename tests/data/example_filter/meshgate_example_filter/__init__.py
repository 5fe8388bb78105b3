"""An example meshgate filter from outside the project: ``stamp``.

It adds a header to the request going upstream and to the response, so a
test can see it ran on both sides. A plugin module provides what a built-in
filter module does: a pydantic ``Config`` and ``build(config) -> Filter``.

    - name: stamp
      config: {header: x-stamp, value: plugin}
"""

from __future__ import annotations

import dataclasses

from pydantic import BaseModel, ConfigDict

from filters.http import Filter, Handler, HttpRequest, HttpResponse


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    header: str = "x-stamp"
    value: str = "stamped"


def build(config: Config) -> Filter:
    name = config.header.lower()

    def stamp(next_handler: Handler) -> Handler:
        async def handle(request: HttpRequest) -> HttpResponse:
            stamped = dataclasses.replace(
                request, header_list=[*request.header_list, (name, config.value)], _headers=None
            )
            response = await next_handler(stamped)
            response.headers.append((name, config.value))
            return response

        return handle

    return stamp
