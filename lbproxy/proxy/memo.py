"""Bounded memos: a worker remembers the results of pure functions of bytes its peers repeat.

A client repeats its request heads (``framing.remember_head``) and its Host (``framing._check_host``), an
instance its response heads (``upstream.whole_response``), and a client address its X-Forwarded lines
(``forwarding.remember_client``). Each memo is a plain ``dict`` read inline on the hot path (a hit costs one
lookup, no call); ``remember`` is the one way an entry goes in, and keeps the memo bounded: a full memo is
emptied, so a peer that never repeats itself costs one insertion per miss and holds at most ``bound``
entries.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, value: V, bound: int) -> V:
    """Keep ``value`` for ``key`` in ``memo`` (emptied first when it holds ``bound`` entries); returns ``value``."""
    if len(memo) >= bound:
        memo.clear()
    memo[key] = value
    return value
