"""The access log: one line per request, off the hot path.

    record.py    the JSON line of an Exchange, and the shared time format
    format.py    Envoy-style format strings (%REQ(X)%, %RESPONSE_CODE%, ...),
                 parsed once at load into a function of the Exchange (sans-IO)
    writer.py    a bounded buffer drained by a thread into a file or stdout
                 (O_APPEND, whole lines per write; reopened on SIGUSR1 or
                 when the file was rotated away)
    observer.py  the app observer: filter, sample, format, hand to the writer

docs/observability.md describes the fields and the operators.
"""
