"""Dubbo registries: where providers register themselves, read live.

providers.py   a provider as meshgate sees it; Dubbo URL parsing; selection
layout.py      ZooKeeper's node layout and payloads (sans-IO)
zookeeper.py   the live view of one ZooKeeper (kazoo watches, outage handling)
watchers.py    a worker's registries, feeding registry clusters and exposures
"""
