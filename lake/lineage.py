"""Lineage of the lake's tables, from each source system through bronze and silver to the gold models.

The catalog page draws it as an inline SVG, layered left to right, with the small layout
below (no script library: the page is opened offline, from a file).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote as url_quote

LAYER_RANK = {"source": 0, "bronze": 1, "silver": 2, "gold": 3}
NOT_A_SYSTEM = {"", "plantlake", "silver"}  # sources that name no system outside the lake
NODE_W, NODE_H, COLUMN_GAP, ROW_GAP, TOP, PAD = 220, 26, 70, 10, 28, 8
LABEL_CHARS = 30


@dataclass(frozen=True)
class Lineage:
    layers: Mapping[str, str]  # node (a table's 'layer.name', or a source system) -> its layer, or "source"
    edges: frozenset[tuple[str, str]]  # (parent, child)

    def parents(self, node: str) -> list[str]:
        return sorted(parent for parent, child in self.edges if child == node)

    def children(self, node: str) -> list[str]:
        return sorted(child for parent, child in self.edges if parent == node)

    def ancestors(self, node: str) -> list[str]:
        """Every node `node` is built from, nearest layer last (source systems first)."""
        return self._order(self._reach(node, self.parents))

    def descendants(self, node: str) -> list[str]:
        """Every node built from `node`, down to the gold models."""
        return self._order(self._reach(node, self.children))

    def _reach(self, node: str, step: Callable[[str], list[str]]) -> set[str]:
        found: set[str] = set()
        frontier = [node]
        while frontier:
            for nxt in step(frontier.pop()):
                if nxt not in found and nxt != node:
                    found.add(nxt)
                    frontier.append(nxt)
        return found

    def _order(self, nodes: Iterable[str]) -> list[str]:
        return sorted(nodes, key=lambda node: (LAYER_RANK.get(self.layers.get(node, ""), 9), node))


def lineage(tables: Mapping[str, tuple[str, str, Sequence[str]]]) -> Lineage:
    """From each table's (layer, source, upstream tables), keyed 'layer.name'.

    Only bronze, silver and gold tables are drawn. A table none of whose upstream tables is
    in the lake hangs from its source system (e.g. 'erp:erp'), if it names one.
    """
    layers = {name: layer for name, (layer, _, _) in tables.items() if layer in LAYER_RANK}
    edges: set[tuple[str, str]] = set()
    for name in layers:
        _, source, upstream = tables[name]
        parents = [parent for parent in upstream if parent in layers]
        edges.update((parent, name) for parent in parents)
        if not parents and source not in NOT_A_SYSTEM:
            edges.add((source, name))
    for parent, _ in edges:
        layers.setdefault(parent, "source")
    return Lineage(layers, frozenset(edges))


def columns(graph: Lineage) -> dict[str, int]:
    """Each node's column: its layer's rank, or further right than every parent of a layer not after its own."""
    placed: dict[str, int] = {}

    def column(node: str, seen: frozenset[str]) -> int:
        if node not in placed:
            rank = LAYER_RANK[graph.layers[node]]
            pushed = [
                column(parent, seen | {node}) + 1
                for parent in graph.parents(node)
                if parent not in seen and LAYER_RANK[graph.layers[parent]] <= rank
            ]
            placed[node] = max([rank, *pushed])
        return placed[node]

    for node in graph.layers:
        column(node, frozenset())
    return placed


def positions(graph: Lineage) -> dict[str, tuple[int, int]]:
    """(column, row) of each node: a column's nodes ordered by the mean row of their parents, then by name."""
    placed = columns(graph)
    rows: dict[str, int] = {}
    for column in sorted(set(placed.values())):
        nodes = [node for node, at in placed.items() if at == column]

        def weight(node: str) -> tuple[float, str]:
            seen = [rows[parent] for parent in graph.parents(node) if parent in rows]
            return (sum(seen) / len(seen) if seen else float("inf"), node)

        for row, node in enumerate(sorted(nodes, key=weight)):
            rows[node] = row
    return {node: (placed[node], rows[node]) for node in placed}


def anchor(node: str) -> str:
    """The id of a table's section on the catalog page."""
    return f"t-{node}"


def svg(graph: Lineage) -> str:
    """The whole lineage as one inline SVG element; each table links to its section of the page."""
    at = positions(graph)
    if not at:
        return '<svg class="lineage" width="0" height="0" role="img" aria-label="lineage: no tables"></svg>'
    width = PAD * 2 + (max(column for column, _ in at.values()) + 1) * (NODE_W + COLUMN_GAP) - COLUMN_GAP
    height = TOP + (max(row for _, row in at.values()) + 1) * (NODE_H + ROW_GAP) + PAD

    def box(node: str) -> tuple[int, int]:
        column, row = at[node]
        return PAD + column * (NODE_W + COLUMN_GAP), TOP + row * (NODE_H + ROW_GAP)

    parts = [
        f'<svg class="lineage" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="lineage of the lake tables, sources on the left, gold models on the right">'
    ]
    for column in sorted({column for column, _ in at.values()}):
        layer = next(graph.layers[node] for node, (there, _) in at.items() if there == column)
        parts.append(f'<text class="header" x="{PAD + column * (NODE_W + COLUMN_GAP)}" y="16">{layer}</text>')
    for parent, child in sorted(graph.edges):
        (x1, y1), (x2, y2) = box(parent), box(child)
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H // 2, y2 + NODE_H // 2
        middle = (x1 + x2) // 2
        parts.append(f'<path class="edge" d="M{x1} {y1} C{middle} {y1} {middle} {y2} {x2} {y2}"/>')
    for node in sorted(at):
        parts.append(_node(node, graph.layers[node], *box(node)))
    parts.append("</svg>")
    return "".join(parts)


def _node(node: str, layer: str, x: int, y: int) -> str:
    label = node.split(".", 1)[1] if layer != "source" else node
    label = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"
    shape = (
        f'<g class="node {layer}"><title>{html.escape(node)}</title>'
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="4"/>'
        f'<text x="{x + 8}" y="{y + NODE_H // 2 + 4}">{html.escape(label)}</text></g>'
    )
    if layer == "source":
        return shape
    return f'<a href="#{html.escape(url_quote(anchor(node), safe=""))}">{shape}</a>'
