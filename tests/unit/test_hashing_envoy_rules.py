"""Envoy's hashing rules, checked piece by piece without sockets.

The end-to-end proof (the same endpoint as Envoy for 10,000 keys) is
tests/integration/test_hash_compat.py; these pin the parts it relies on.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2

from mesh.endpoint import Endpoint
from mesh.errors import ResourceError
from mesh.hashing import HashOn, HashPolicy, RequestAttributes, hash_key
from mesh.hashing_lb import MaglevPicker, RingHashPicker, hash64
from mesh.xds.cluster import cluster
from tests.support import xds_builders as b


def endpoints(*weights: int) -> list[Endpoint]:
    return [Endpoint("127.0.0.1", 10_000 + i, weight=w) for i, w in enumerate(weights)]


def test_hash64_is_xxhash64() -> None:
    # The reference vectors of xxHash's own test suite.
    assert hash64("") == 0xEF46DB3751D8E999
    assert hash64(b"a") == 0xD24EC4F1A98C6E5B
    assert hash64("abc") == 0x44BC2CF5AD770999


def test_ring_spreads_fractional_shares_with_running_sums() -> None:
    # Envoy's own example: 4 equal hosts on a ring capped at 6 points get
    # 1.5 points each, handed out as 2, 1, 2, 1.
    picker = RingHashPicker(endpoints(1, 1, 1, 1), min_ring_size=8, max_ring_size=6)
    owners = Counter(picker._owners)
    assert [owners[i] for i in range(4)] == [2, 1, 2, 1]


def test_ring_size_is_the_minimum_when_weights_divide_it() -> None:
    picker = RingHashPicker(endpoints(1, 3), min_ring_size=1024)
    owners = Counter(picker._owners)
    assert owners == {0: 256, 1: 768}


def test_ring_lookup_takes_the_first_point_at_or_after_the_key_and_wraps() -> None:
    picker = RingHashPicker(endpoints(1, 1, 1), min_ring_size=8)
    hashes, owners, chosen = picker._hashes, picker._owners, picker._endpoints
    for index in range(1, len(hashes)):
        assert picker.pick(hashes[index]) == chosen[owners[index]]
        assert picker.pick(hashes[index - 1] + 1) == chosen[owners[index]]
    assert picker.pick(hashes[0]) == chosen[owners[0]]
    assert picker.pick(hashes[-1] + 1) == chosen[owners[0]]


def test_maglev_table_does_not_depend_on_endpoint_order() -> None:
    forward = endpoints(1, 2, 3, 4)
    shuffled = list(forward)
    random.Random(7).shuffle(shuffled)
    a, b = MaglevPicker(forward, table_size=251), MaglevPicker(shuffled, table_size=251)
    assert [a.pick(k) for k in range(251)] == [b.pick(k) for k in range(251)]


def test_maglev_fills_in_proportion_to_weight() -> None:
    picker = MaglevPicker(endpoints(1, 3))
    counts = Counter(picker.pick(k).port for k in range(65537))
    assert abs(counts[10_001] / counts[10_000] - 3) < 0.01


def header_key(headers: Mapping[str, str | Sequence[str]], *policies: HashPolicy) -> int | None:
    return hash_key(policies, headers, 0)


def test_header_policy_hashes_the_value_with_seed_zero() -> None:
    assert header_key({"x-user": "alice"}, HashPolicy(HashOn.HEADER, "x-user")) == hash64("alice")


def test_repeated_header_chains_the_sorted_values_through_the_seed() -> None:
    # Envoy 1.40, observed: each value hashed with the previous hash as seed.
    policy = HashPolicy(HashOn.HEADER, "x-user")
    chained = hash64("b", hash64("a"))
    assert header_key({"x-user": ["b", "a"]}, policy) == chained
    assert header_key({"x-user": ["a", "b"]}, policy) == chained


def test_header_bytes_are_hashed_as_they_came_on_the_wire() -> None:
    # ASGI gives header values decoded as latin-1; Envoy hashes the raw bytes.
    raw = "caf\u00e9"
    assert header_key({"x-user": raw}, HashPolicy(HashOn.HEADER, "x-user")) == hash64(b"caf\xe9")


def test_policies_combine_by_rotating_then_xoring() -> None:
    a, b = HashPolicy(HashOn.HEADER, "a"), HashPolicy(HashOn.HEADER, "b")
    first = hash64("1")
    expected = (((first << 1) | (first >> 63)) & (2**64 - 1)) ^ hash64("2")
    assert header_key({"a": "1", "b": "2"}, a, b) == expected


def test_terminal_policy_with_a_value_ends_the_key() -> None:
    a = HashPolicy(HashOn.HEADER, "a", terminal=True)
    b = HashPolicy(HashOn.HEADER, "b")
    assert header_key({"a": "1", "b": "2"}, a, b) == hash64("1")


def test_terminal_policy_without_a_value_still_ends_an_existing_key() -> None:
    # Envoy checks "terminal and a key exists", not "terminal and this policy matched".
    c = HashPolicy(HashOn.HEADER, "c")
    a = HashPolicy(HashOn.HEADER, "a", terminal=True)
    b = HashPolicy(HashOn.HEADER, "b")
    assert header_key({"c": "3", "b": "2"}, c, a, b) == hash64("3")


def test_query_parameter_is_hashed_without_percent_decoding() -> None:
    policy = HashPolicy(HashOn.QUERY_PARAMETER, "user")
    attributes = RequestAttributes(query_string=b"x=1&user=a%20b&user=c")
    assert hash_key((policy,), {}, 0, attributes) == hash64("a%20b")


def test_no_attribute_no_key() -> None:
    assert header_key({}, HashPolicy(HashOn.HEADER, "x-user")) is None


def test_repeated_header_lines_are_hashed_from_their_separate_values() -> None:
    # The joined mapping would say "b,a"; the lines as they came say b and a.
    policy = HashPolicy(HashOn.HEADER, "x-user")
    attributes = RequestAttributes(header_list=[("x-user", "b"), ("other", "z"), ("x-user", "a")])
    assert hash_key((policy,), {"x-user": "b,a"}, 0, attributes) == hash64("b", hash64("a"))
    # One line with a comma in it is one value, as in Envoy.
    single = RequestAttributes(header_list=[("x-user", "b,a")])
    assert hash_key((policy,), {"x-user": "b,a"}, 0, single) == hash64("b,a")


def test_ring_and_table_sizes_come_from_cds_legacy_and_typed_policies() -> None:
    legacy = b.cluster("outbound|50051|v1|shop", lb_policy="RING_HASH")
    legacy.ring_hash_lb_config.minimum_ring_size.value = 64
    legacy.ring_hash_lb_config.maximum_ring_size.value = 128
    assert (cluster(legacy).ring_min_size, cluster(legacy).ring_max_size) == (64, 128)

    typed = b.cluster("outbound|50051|v1|shop")
    policy = typed.load_balancing_policy.policies.add()
    config = ring_hash_pb2.RingHash()
    config.minimum_ring_size.value = 32
    policy.typed_extension_config.typed_config.Pack(config)
    parsed = cluster(typed)
    assert (parsed.lb_policy, parsed.ring_min_size) == ("ring_hash", 32)

    maglev = b.cluster("outbound|50051|v1|shop")
    policy = maglev.load_balancing_policy.policies.add()
    policy.typed_extension_config.typed_config.Pack(maglev_pb2.Maglev(table_size={"value": 251}))
    assert cluster(maglev).maglev_table_size == 251

    not_prime = b.cluster("outbound|50051|v1|shop", lb_policy="MAGLEV")
    not_prime.maglev_lb_config.table_size.value = 1000
    with pytest.raises(ResourceError, match="not prime"):
        cluster(not_prime)
    murmur = b.cluster("outbound|50051|v1|shop", lb_policy="RING_HASH")
    murmur.ring_hash_lb_config.hash_function = cluster_pb2.Cluster.RingHashLbConfig.MURMUR_HASH_2
    with pytest.raises(ResourceError, match="XX_HASH"):
        cluster(murmur)
