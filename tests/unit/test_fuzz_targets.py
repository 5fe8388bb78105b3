"""The fuzz targets run on their seeds (so ``make fuzz`` stays runnable), and
a short hypothesis run of random bytes through each finds nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import SEEDS, TARGETS


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_target_has_seeds_and_accepts_them(name: str) -> None:
    assert SEEDS[name]
    for seed in SEEDS[name]:
        TARGETS[name](seed)


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=512))
def test_random_bytes_find_nothing(name: str, data: bytes) -> None:
    TARGETS[name](data)


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_mutated_seeds_find_nothing(name: str, data: st.DataObject) -> None:
    seed = bytearray(data.draw(st.sampled_from(SEEDS[name])))
    for _ in range(data.draw(st.integers(1, 4))):
        if seed:
            seed[data.draw(st.integers(0, len(seed) - 1))] = data.draw(st.integers(0, 255))
    TARGETS[name](bytes(seed))
