"""Route kinds: how an HTTP request becomes a call and its reply becomes a response.

    route_kind.py      the interface the router uses (decode, encode)
    protobuf_kind.py   REST/JSON <-> protobuf RPCs (auto-mapping, google.api.http)
    dubbo_kind.py      JSON arguments to a Dubbo service, no IDL
    compile.py         a route's transcode section -> RPC tables (at load)
    path_template.py path_matcher.py http_rule.py   google.api.http templates, the trie
    json_codec.py fast_json.py bytes_check.py       JSON <-> protobuf messages
    rest.py client_stream.py streaming.py           Envoy's binding precedence, stream framing

Everything but the two kinds' ``decode`` (which reads the body) is sans-IO.
"""
