"""Everything after "route chosen": clusters and call plans, the invoker, and the
protocol clients (grpc, triple, triple-json, dubbo2) behind one Upstream interface.

    call.py        Call, Reply, the Upstream protocol
    clusters.py    a route's cluster reference -> CallPlan (static and xDS alike)
    mesh.py        the worker's mesh core, for xds:/// clusters
    invoker.py     deadline, fault, in-flight cap, retries
    registry.py    the worker's protocol clients, by name
    grpc.py triple.py triple_json.py dubbo.py dubbo_conn.py   the protocol clients
    http1.py http1_pool.py    HTTP/1.1 messages (sans-IO) and the keep-alive pool, for triple_json
    metadata.py status.py generic.py                          what they share
"""
