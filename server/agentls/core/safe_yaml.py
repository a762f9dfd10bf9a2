"""YAML from untrusted files (agent definitions in cloned repos): bounded before anything expands.

A few hundred bytes of nested anchors (`b: &b [*a, *a, ...]`) describe billions of nodes; a walk
over the tree or a validator over the loaded lists then takes gigabytes. Here a file is refused
when it is too large, uses too many aliases, expands to too many nodes or nests too deeply, and
duplicate keys in a mapping are an error instead of the last one silently winning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

MAX_BYTES = 256 * 1024
MAX_ALIASES = 100
MAX_NODES = 50_000
MAX_DEPTH = 64


@dataclass
class YamlProblem(Exception):
    """Why a document was refused, with its 1-based position when known."""

    message: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return self.message


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and depth while composing, before anything is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise YamlProblem(
                    f"more than {MAX_ALIASES} aliases (*name); a definition file needs few",
                    mark.line + 1,
                    mark.column + 1,
                )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlProblem(
                    f"nested more than {MAX_DEPTH} levels deep", mark.line + 1, mark.column + 1
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as exc:  # e.g. a date such as 2024-13-45
            raise YamlProblem(
                f"cannot read {node.value!r}: {exc}"
                if isinstance(node, yaml.ScalarNode)
                else f"cannot read a value: {exc}",
                *_position(node.start_mark),
            ) from None


def _first_oversized(root: yaml.Node) -> yaml.Node | None:
    """The first node (children before parents) that expands past MAX_NODES once every alias is
    expanded, or None. Sized without expanding: each distinct node is sized once."""
    sizes: dict[int, int] = {}
    order: list[yaml.Node] = []
    stack: list[yaml.Node] = [root]
    seen: set[int] = set()
    while stack:  # post-order without recursion: children sized before parents
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(node)
        stack.extend(_children(node))
    for node in reversed(order):
        total = 1 + sum(sizes.get(id(child), 1) for child in _children(node))
        if total > MAX_NODES:
            return node
        sizes[id(node)] = total
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def duplicate_keys(root: yaml.Node) -> list[YamlProblem]:
    """Keys that occur twice in one mapping, each named with both lines."""
    problems = []
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, yaml.Node] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                earlier = first.get(key_node.value)
                if earlier is not None:
                    problems.append(
                        YamlProblem(
                            f"duplicate key {key_node.value!r} (first set on line "
                            f"{earlier.start_mark.line + 1}); remove one of them",
                            key_node.start_mark.line + 1,
                            key_node.start_mark.column + 1,
                        )
                    )
                else:
                    first[key_node.value] = key_node
        stack.extend(_children(node))
    return problems


def compose_untrusted(text: str) -> yaml.Node | None:
    """The node tree of one YAML document within the bounds above; YamlProblem or MarkedYAMLError."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlProblem(f"the file is larger than {MAX_BYTES // 1024} KB")
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
    except RecursionError:
        raise YamlProblem(f"nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()
    oversized = _first_oversized(root) if root is not None else None
    if oversized is not None:
        raise YamlProblem(
            f"expands to more than {MAX_NODES:,} values through its aliases (*name); "
            "a definition file needs far fewer",
            *_position(oversized.start_mark),
        )
    return root


def _position(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def construct(root: yaml.Node | None) -> Any:
    """The Python value of a composed (and already bounded) document."""
    if root is None:
        return None
    loader = _BoundedLoader("")
    try:
        return loader.construct_document(root)
    finally:
        loader.dispose()
