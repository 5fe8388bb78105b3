"""TLS for the gateway: listener contexts (SNI, rotation), upstream client
contexts with SAN checks, and the transport that carries upstream
connections over TLS. See docs/tls.md."""
