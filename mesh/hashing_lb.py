"""Consistent-hashing pickers: ring hash (Ketama) and Maglev, built as Envoy builds them.

For the same endpoints (addresses, weights, order) and the same 64-bit request
key, both pickers choose the endpoint Envoy chooses: positions are xxHash64
(seed 0) of the keys Envoy hashes, the ring and the table are filled in
Envoy's order with Envoy's floating-point weight arithmetic, and the lookups
are Envoy's. tests/integration/test_hash_compat.py holds Envoy itself to that.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import xxhash

from mesh.endpoint import Endpoint, routable

MAGLEV_TABLE_SIZE = 65537  # prime, Envoy's default
MIN_RING_SIZE = 1024  # Envoy's default minimum_ring_size
MAX_RING_SIZE = 8 * 1024 * 1024  # Envoy's default (and upper bound of) maximum_ring_size


def hash64(text: str | bytes, seed: int = 0) -> int:
    """Envoy's HashUtil::xxHash64: XXH64 of the bytes with the given seed."""
    data = text.encode() if isinstance(text, str) else text
    return xxhash.xxh64_intdigest(data, seed)


def normalized_weights(endpoints: Sequence[Endpoint]) -> list[float]:
    """Each endpoint's share of the total weight, computed as Envoy does (in doubles)."""
    total = sum(e.weight for e in endpoints)
    return [e.weight * 1.0 / total for e in endpoints]


class RingHashPicker:
    """Each endpoint owns points on a ring in proportion to its weight.

    Point ``i`` of an endpoint is xxHash64 of ``"<address>_<i>"``; a request
    goes to the first point at or after its key, wrapping round at the end.
    """

    __slots__ = ("_endpoints", "_hashes", "_owners", "_rng")

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        rng: random.Random | None = None,
        min_ring_size: int = MIN_RING_SIZE,
        max_ring_size: int = MAX_RING_SIZE,
    ) -> None:
        usable = routable(endpoints)
        weights = normalized_weights(usable)
        smallest = min(weights)
        # Enough points that the lightest endpoint gets a whole number of them,
        # capped by the maximum ring size.
        scale = min(math.ceil(smallest * min_ring_size) / smallest, float(max_ring_size))
        ring: list[tuple[int, int]] = []
        # Running sums over the whole ring rather than a rounded count per
        # endpoint: fractional shares then add up exactly as Envoy's do.
        current = 0.0
        target = 0.0
        for index, (endpoint, weight) in enumerate(zip(usable, weights, strict=True)):
            prefix = f"{endpoint.address}_"
            target += scale * weight
            point = 0
            while current < target:
                ring.append((hash64(f"{prefix}{point}"), index))
                point += 1
                current += 1
        ring.sort(key=lambda entry: entry[0])
        self._hashes = [h for h, _ in ring]
        self._owners = [i for _, i in ring]
        self._endpoints = usable
        self._rng = rng or random.Random()

    def __len__(self) -> int:
        return len(self._hashes)

    def pick(self, hash_key: int | None = None) -> Endpoint:
        if hash_key is None:
            hash_key = self._rng.getrandbits(64)
        return self._endpoints[self._owners[self._slot(hash_key)]]

    def _slot(self, key: int) -> int:
        """Envoy's lookup (ported by Envoy from libketama): a binary search for the point
        with ``previous < key <= point``, which falls back to point 0 when it misses
        (a key above the last point, or exactly 0)."""
        hashes = self._hashes
        low, high = 0, len(hashes)
        while True:
            middle = (low + high) // 2
            if middle == len(hashes):
                return 0
            value = hashes[middle]
            below = hashes[middle - 1] if middle > 0 else 0
            if below < key <= value:
                return middle
            if value < key:
                low = middle + 1
            else:
                high = middle - 1
            if low > high:
                return 0


class MaglevPicker:
    """Maglev lookup table (Google's paper, listing 1), with Envoy's weighting.

    Endpoints are taken in the order of their hash keys (addresses), each
    with an offset xxHash64(address) and a skip xxHash64(address, seed 1);
    in every round an endpoint claims its next free preferred slot if its
    weight has earned one.
    """

    __slots__ = ("_endpoints", "_rng", "_table")

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        rng: random.Random | None = None,
        table_size: int = MAGLEV_TABLE_SIZE,
    ) -> None:
        usable = routable(endpoints)
        weights = normalized_weights(usable)
        heaviest = max(weights)
        # Envoy sorts by the hashed key so that the table does not depend on
        # the order the endpoints arrived in.
        order = sorted(range(len(usable)), key=lambda i: usable[i].address.encode())
        offsets = [hash64(usable[i].address) % table_size for i in order]
        skips = [hash64(usable[i].address, 1) % (table_size - 1) + 1 for i in order]
        shares = [weights[i] for i in order]
        earned = [0.0] * len(order)
        turn = [0] * len(order)
        table = [-1] * table_size
        filled = 0
        round_number = 1
        while filled < table_size:
            for n in range(len(order)):
                if filled == table_size:
                    break
                # An endpoint as heavy as the heaviest claims a slot every
                # round; one a third as heavy, every third round.
                if round_number * shares[n] < earned[n]:
                    continue
                earned[n] += heaviest
                slot = (offsets[n] + skips[n] * turn[n]) % table_size
                while table[slot] >= 0:
                    turn[n] += 1
                    slot = (offsets[n] + skips[n] * turn[n]) % table_size
                table[slot] = order[n]
                turn[n] += 1
                filled += 1
            round_number += 1
        self._table = table
        self._endpoints = usable
        self._rng = rng or random.Random()

    def pick(self, hash_key: int | None = None) -> Endpoint:
        if hash_key is None:
            hash_key = self._rng.getrandbits(64)
        return self._endpoints[self._table[hash_key % len(self._table)]]
