"""Classic Dubbo (the dubbo2 TCP protocol) with hessian2 serialization, sans-IO.

``hessian2`` turns Python values into Hessian 2.0 bytes and back, the way
Dubbo's hessian-lite and dubbo-go-hessian2 write them; ``protocol`` frames
requests, responses and heartbeats for the dubbo2 wire protocol. No module
here touches a socket: the connection pool lives elsewhere.
"""
