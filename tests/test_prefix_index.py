"""The sorted prefix index behind recursive selection, against brute force on random trees."""

from __future__ import annotations

import random

import pytest

from froster_slurm.pick import prefix_index
from froster_slurm.pick.prefix_index import PrefixIndex
from froster_slurm.pick.selection import FolderSet, ancestors, folder_key

# Names that sort around "/" (0x2f) and bytes that are not UTF-8: /a/b, /a/b!, /a/b-, /a/b.,
# /a/bc, /a/b\xff all sit next to /a/b/... in byte order, which is where a prefix search errs.
PARTS = [b"a", b"b", b"bc", b"b!", b"b-", b"b.", b"b0", b"\xe9", b"b\xff", b"\xff", b"a b"]


def random_folder(rng: random.Random) -> bytes:
    depth = rng.randint(0, 5)
    path = b"/" + b"/".join(rng.choice(PARTS) for _ in range(depth))
    if rng.random() < 0.1:
        path = path.replace(b"/", b"//", 1)  # another spelling of the same folder
    if rng.random() < 0.1 and path != b"/":
        path += b"/"
    if rng.random() < 0.05:
        path = path.lstrip(b"/") or b"rel"  # relative paths, as a hand-written list may hold
    return path


def is_ancestor(anc: bytes, key: bytes) -> bool:
    """Brute force: ``anc`` is a proper ancestor of ``key`` (both normalised)."""
    return anc in set(ancestors(key))


class BruteSet:
    """Today's rules for a recursive selection, written the obvious O(N) way."""

    def __init__(self) -> None:
        self.members: dict[bytes, bytes] = {}

    def add(self, folder: bytes) -> tuple[str, set[bytes]] | None:
        key = folder_key(folder)
        if key in self.members:
            return "same", {self.members[key]}
        up = {f for k, f in self.members.items() if is_ancestor(k, key)}
        if up:
            return "inside", up
        down = {k for k in self.members if is_ancestor(key, k)}
        if down:
            return "contains", down
        self.members[key] = folder
        return None

    def discard(self, folder: bytes) -> bool:
        return self.members.pop(folder_key(folder), None) is not None


@pytest.mark.parametrize("block", [2, 512])
@pytest.mark.parametrize("seed", range(3))
def test_folder_set_answers_like_brute_force_on_random_trees(monkeypatch, seed, block):
    monkeypatch.setattr(prefix_index, "BLOCK", block)  # small blocks: splits and empty blocks
    rng = random.Random(seed)
    fast, brute = FolderSet(recursive=True), BruteSet()
    kinds = set()
    for _ in range(2000):
        folder = random_folder(rng)
        if rng.random() < 0.3:
            assert fast.discard(folder) == brute.discard(folder)
            continue
        got, want = fast.add(folder), brute.add(folder)
        if want is None:
            assert got is None, (folder, got)
            continue
        kind, others = want
        kinds.add(kind)
        assert got is not None and got.kind == kind, (folder, got, want)
        if kind == "contains":  # the first member below the folder in byte order
            assert got.other == fast._members[min(others)]
        else:
            assert got.other in others
        assert len(fast) == len(brute.members)
    assert sorted(fast) == sorted(brute.members.values())
    assert list(fast._sorted) == sorted(brute.members)
    assert kinds == {"same", "inside", "contains"}  # the random trees hit every case


def test_prefix_siblings_are_not_inside_each_other():
    s = FolderSet(recursive=True)
    for sibling in (b"/a/b!", b"/a/b-", b"/a/b.", b"/a/bc", b"/a/b\xff", b"/a/b0"):
        assert s.add(sibling) is None
    assert s.add(b"/a/b") is None  # none of them is below /a/b
    assert s.add(b"/a/b/x").kind == "inside"
    s.discard(b"/a/b")
    s.add(b"/a/b/x")
    c = s.add(b"/a/b")
    assert c and c.kind == "contains" and c.other == b"/a/b/x"
    assert s.add(b"/").kind == "contains"


@pytest.mark.parametrize("seed", range(4))
def test_prefix_index_against_a_sorted_list(monkeypatch, seed):
    monkeypatch.setattr(prefix_index, "BLOCK", 2)
    rng = random.Random(seed)
    idx, ref = PrefixIndex(), set()
    for _ in range(4000):
        key = bytes(rng.choice(b"ab/\xff") for _ in range(rng.randint(0, 4)))
        if rng.random() < 0.4:
            assert idx.discard(key) == (key in ref)
            ref.discard(key)
        else:
            assert idx.add(key) == (key not in ref)
            ref.add(key)
        prefix = bytes(rng.choice(b"ab/\xff") for _ in range(rng.randint(0, 3)))
        hits = sorted(k for k in ref if k.startswith(prefix))
        assert idx.first_with_prefix(prefix) == (hits[0] if hits else None)
        assert len(idx) == len(ref)
    assert list(idx) == sorted(ref)
