"""HTTP/2 serving: the listeners' own protocol on the sans-IO ``h2`` library.

* :mod:`gateway.http2.messages`: request head → ASGI scope fields, with the
  listener's header limits; ASGI response headers → HTTP/2 fields (pure).
* :mod:`gateway.http2.stream`: one stream as an ASGI request (``receive`` and
  ``send``), with flow control both ways.
* :mod:`gateway.http2.protocol`: the asyncio protocol driving one ``h2``
  connection: streams run the ASGI app concurrently; SETTINGS, GOAWAY,
  idle timeout, connection cap.
* :mod:`gateway.http2.select`: the protocol uvicorn instantiates per
  connection; it picks HTTP/2 (ALPN ``h2``, or the cleartext preface) or
  hands the connection to the HTTP/1.1 edge protocol.
"""
