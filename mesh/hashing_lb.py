"""Consistent-hashing pickers: ring hash (Ketama) and Maglev.

Both map a request's 64-bit hash key to an endpoint so that the same key
keeps landing on the same endpoint while the set changes little. Positions
come from blake2b (the standard library's), not xxHash: the mapping is
stable within meshgate, not byte-identical to Envoy's ring.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Sequence

from mesh.endpoint import Endpoint, routable

MAGLEV_TABLE_SIZE = 65537  # prime, Envoy's default


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class RingHashPicker:
    """Each endpoint owns slots on a ring in proportion to its weight."""

    __slots__ = ("_endpoints", "_hashes", "_owners", "_rng")

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        rng: random.Random | None = None,
        min_ring_size: int = 1024,
        max_ring_size: int = 8 * 1024 * 1024,
    ) -> None:
        usable = routable(endpoints)
        total = sum(e.weight for e in usable)
        smallest = min(e.weight for e in usable) / total
        # Enough slots that the lightest endpoint still gets at least one.
        scale = min(math.ceil(smallest * min_ring_size) / smallest, max_ring_size)
        ring: list[tuple[int, int]] = []
        for index, endpoint in enumerate(usable):
            slots = max(1, round(scale * endpoint.weight / total))
            ring.extend((hash64(f"{endpoint.address}_{i}"), index) for i in range(slots))
        ring.sort()
        self._hashes = [h for h, _ in ring]
        self._owners = [i for _, i in ring]
        self._endpoints = usable
        self._rng = rng or random.Random()

    def pick(self, hash_key: int | None = None) -> Endpoint:
        if hash_key is None:
            hash_key = self._rng.getrandbits(64)
        slot = bisect.bisect_left(self._hashes, hash_key)
        if slot == len(self._hashes):
            slot = 0
        return self._endpoints[self._owners[slot]]


class MaglevPicker:
    """Maglev lookup table; endpoints fill their preferred slots in weighted turns."""

    __slots__ = ("_endpoints", "_rng", "_table")

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        rng: random.Random | None = None,
        table_size: int = MAGLEV_TABLE_SIZE,
    ) -> None:
        usable = routable(endpoints)
        offsets = [hash64(e.address) % table_size for e in usable]
        skips = [hash64(e.address + "#skip") % (table_size - 1) + 1 for e in usable]
        heaviest = max(e.weight for e in usable)
        credit = [0.0] * len(usable)
        turn = [0] * len(usable)
        table = [-1] * table_size
        filled = 0
        while filled < table_size:
            for i, endpoint in enumerate(usable):
                credit[i] += endpoint.weight / heaviest
                if credit[i] < 1.0:
                    continue
                credit[i] -= 1.0
                while True:
                    slot = (offsets[i] + turn[i] * skips[i]) % table_size
                    turn[i] += 1
                    if table[slot] < 0:
                        table[slot] = i
                        filled += 1
                        break
                if filled == table_size:
                    break
        self._table = table
        self._endpoints = usable
        self._rng = rng or random.Random()

    def pick(self, hash_key: int | None = None) -> Endpoint:
        if hash_key is None:
            hash_key = self._rng.getrandbits(64)
        return self._endpoints[self._table[hash_key % len(self._table)]]
