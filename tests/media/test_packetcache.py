"""media/packetcache.py: the ring of recent packets that answers NACKs."""

from __future__ import annotations

import pytest

from media.packetcache import PacketCache


def test_a_packet_put_is_got_back_by_its_sequence_number() -> None:
    cache: PacketCache[str] = PacketCache(8)
    cache.put(1000, "a")
    cache.put(1001, "b")
    assert cache.get(1000) == "a"
    assert cache.get(1001) == "b"


@pytest.mark.parametrize("seq", [0, 1, 7, 65535])
def test_an_empty_cache_misses_every_sequence_number(seq: int) -> None:
    cache: PacketCache[str] = PacketCache(8)
    assert cache.get(seq) is None


def test_putting_the_same_sequence_number_again_replaces_the_packet() -> None:
    cache: PacketCache[str] = PacketCache(8)
    cache.put(5, "first")
    cache.put(5, "second")
    assert cache.get(5) == "second"


def test_a_packet_size_slots_newer_overwrites_the_older_one() -> None:
    cache: PacketCache[str] = PacketCache(8)
    cache.put(3, "old")
    cache.put(3 + 8, "new")
    assert cache.get(3 + 8) == "new"
    assert cache.get(3) is None


def test_a_stale_slot_misses_a_sequence_number_that_maps_to_it() -> None:
    cache: PacketCache[str] = PacketCache(8)
    cache.put(3, "three")
    # 11 and 19 share slot 3 but were never put
    assert cache.get(11) is None
    assert cache.get(19) is None
    assert cache.get(3) == "three"


def test_the_cache_holds_exactly_its_size_of_most_recent_packets() -> None:
    cache: PacketCache[int] = PacketCache(16)
    for seq in range(100, 140):
        cache.put(seq, seq * 10)
    assert [seq for seq in range(100, 140) if cache.get(seq) is not None] == list(range(124, 140))
    assert all(cache.get(seq) == seq * 10 for seq in range(124, 140))


def test_packets_across_the_16_bit_wraparound_are_all_kept() -> None:
    cache: PacketCache[int] = PacketCache(512)
    seqs = [(65500 + i) & 0xFFFF for i in range(100)]
    for seq in seqs:
        cache.put(seq, seq)
    assert [cache.get(seq) for seq in seqs] == seqs


def test_the_default_size_is_512_slots() -> None:
    cache: PacketCache[int] = PacketCache()
    for seq in range(600):
        cache.put(seq, seq)
    assert cache.get(88) == 88
    assert cache.get(87) is None
