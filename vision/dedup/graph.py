"""Duplicate groups from candidate edges: union-find with a guard against chaining.

Plain union-find over thresholded k-NN edges chains: one wrong edge between two groups merges them, and at scale
that snowballs into a giant component. Two guards:

1. While merging (certain stages first, then by score), an edge that would join two groups that both already have
   several members is accepted only if it is a *mutual* k-NN edge and enough other edges run between the two groups
   (``min_support`` of the smaller group's members, at least ``min_cross_edges``).
2. Because merge order could still let one bad edge join two sets before either grew, every finished group is then
   cut at each bridge (an edge whose removal splits the group) that separates two parts of two or more members:
   one edge alone never holds two multi-member sets together, whatever the order.

Edges that attach a single image to a group, or join two single images, merge as usual.

Example::

    edges = [Edge(0, 1, 1.0, "exact"), Edge(1, 2, 0.93, "embedding", mutual=True)]
    grouping = group_edges(3, edges)            # grouping.groups -> [[0, 1, 2]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# stage -> order of processing: certain edges first (then mutual before one-sided), so guarded merges see the
# groups they should
STAGE_ORDER = {"exact": 0, "phash": 1, "verified": 2, "embedding": 3}


@dataclass(frozen=True)
class Edge:
    """A candidate duplicate pair: ``score`` is 1 for exact copies, ``1 - bits/64`` for pHash, cosine for
    embeddings; ``mutual``: each is among the other's k nearest (exact and pHash pairs are symmetric: mutual)."""

    i: int
    j: int
    score: float
    reason: str
    mutual: bool = True


@dataclass
class Grouping:
    """Union-find result: ``root[i]`` the group of each item; ``accepted`` the edges that merged groups, in merge
    order; ``guarded`` the edges the chaining guard refused."""

    root: list[int]
    accepted: list[Edge] = field(default_factory=list)
    guarded: list[Edge] = field(default_factory=list)

    def best_edges(self) -> list[Edge | None]:
        """For each item, its strongest merging edge (earliest stage, then highest score); ``None`` if alone."""
        best: list[Edge | None] = [None] * len(self.root)
        for e in self.accepted:  # merge order is stage order, then score
            for k in (e.i, e.j):
                if best[k] is None:
                    best[k] = e
        return best

    @property
    def groups(self) -> list[list[int]]:
        """Groups of two or more items, largest first, members in index order."""
        members: dict[int, list[int]] = {}
        for i, r in enumerate(self.root):
            members.setdefault(r, []).append(i)
        return sorted((m for m in members.values() if len(m) > 1), key=lambda m: (-len(m), m[0]))


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))
        self.size = [1] * n
        self.members = [[i] for i in range(n)]

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]
        self.members[a] += self.members[b]
        self.members[b] = []
        return a


def group_edges(n: int, edges: list[Edge], min_support: float = 0.5, min_cross_edges: int = 2) -> Grouping:
    """Group ``n`` items by ``edges`` (see the module docstring for the chaining guards)."""
    uf = UnionFind(n)
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for e in edges:
        neighbours[e.i].add(e.j)
        neighbours[e.j].add(e.i)
    ordered = sorted(edges, key=lambda e: (STAGE_ORDER.get(e.reason, 9), not e.mutual, -e.score, e.i, e.j))
    for e in ordered:
        a, b = uf.find(e.i), uf.find(e.j)
        if a == b:
            continue
        if min(uf.size[a], uf.size[b]) > 1 and e.reason != "exact":
            small, large = (a, b) if uf.size[a] <= uf.size[b] else (b, a)
            cross = sum(1 for m in uf.members[small] for k in neighbours[m] if uf.find(k) == large)
            need = max(min_cross_edges, math.ceil(min_support * uf.size[small]))
            if not e.mutual or cross < need:
                continue
        uf.union(a, b)
    root = _cut_bridges([uf.find(i) for i in range(n)], ordered)
    accepted = [e for e in ordered if root[e.i] == root[e.j]]
    guarded = [e for e in ordered if root[e.i] != root[e.j]]
    return Grouping(root=root, accepted=accepted, guarded=guarded)


def _cut_bridges(root: list[int], edges: list[Edge]) -> list[int]:
    """``root`` after cutting, in every group of four or more, each bridge that joins two multi-member parts
    (exact-copy edges are never cut); groups are relabelled by their smallest member."""
    import networkx as nx

    members: dict[int, list[int]] = {}
    for i, r in enumerate(root):
        members.setdefault(r, []).append(i)
    inside: dict[int, list[Edge]] = {}
    for e in edges:
        if root[e.i] == root[e.j]:
            inside.setdefault(root[e.i], []).append(e)
    root = list(root)
    for r, group in members.items():
        if len(group) < 4:
            continue
        graph = nx.Graph()
        graph.add_nodes_from(group)
        for e in inside.get(r, []):
            graph.add_edge(e.i, e.j, exact=e.reason == "exact")
        cut = True
        while cut:
            cut = False
            for u, v in nx.bridges(graph):
                if graph.edges[u, v]["exact"]:
                    continue
                graph.remove_edge(u, v)
                side = nx.node_connected_component(graph, u)
                if 2 <= len(side) <= len(nx.node_connected_component(graph, v)) + len(side) - 2:
                    cut = True
                    break
                graph.add_edge(u, v, exact=False)
        for part in nx.connected_components(graph):
            label = min(part)
            for i in part:
                root[i] = label
    return root
