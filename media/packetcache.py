"""Recent packets of one up track, by sequence number, for retransmission.

A ring of ``size`` slots indexed by ``seq % size``; a slot holds the packet
only while no newer packet with the same index overwrote it. 512 slots hold
about 2 s of a 2 Mbps video stream, longer than any NACK worth answering.
"""

from __future__ import annotations

from typing import Generic, Optional, TypeVar

T = TypeVar("T")


class PacketCache(Generic[T]):
    __slots__ = ("_seqs", "_items", "_size")

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._seqs: list[int] = [-1] * size
        self._items: list[Optional[T]] = [None] * size

    def put(self, seq: int, item: T) -> None:
        i = seq % self._size
        self._seqs[i] = seq
        self._items[i] = item

    def get(self, seq: int) -> Optional[T]:
        i = seq % self._size
        if self._seqs[i] != seq:
            return None
        return self._items[i]
