"""Reading YAML a user hands us (`externalsource fetch/validate`) in bounded time and memory.

`yaml.safe_load` is safe from code execution but not from exhaustion: an
alias bomb (nine levels of nine aliases) is a few hundred bytes that expand to
a billion nodes as soon as anything walks the result (a validator, `str()` of
a name); 50,000 nested `[` end in a `RecursionError` traceback; a 20 MB file
takes a minute in the pure-Python parser. Manifests are small and shallow, so
the limits below cost legitimate input nothing and turn each attack into a
one-line `YamlLimitError` before any of that work happens:

- the file is read up to `MAX_BYTES` (1 MiB: the size of a ConfigMap or
  Secret; a source manifest is a few KiB), which bounds the parse to seconds;
- nesting deeper than `MAX_DEPTH` (64) is refused while composing, before
  Python's recursion limit is near;
- at most `MAX_NODES` (100,000) values per file, at most `MAX_ALIASES` (100)
  aliases, and each document's size *with aliases expanded* (counted over the
  node graph, in linear time) at most `MAX_NODES` too: that is what stops a
  bomb, which needs few aliases.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_NODES = 100_000


class YamlLimitError(ValueError):
    """The input is not valid YAML or exceeds a limit; the message is one line."""


def _where(node_or_event: Any) -> str:
    mark = getattr(node_or_event, "start_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts depth and aliases while composing, and expanded size after."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        self._nodes += 1
        if self._nodes > MAX_NODES:  # stops a huge flat file early, not only a bomb
            raise YamlLimitError(f"more than {MAX_NODES} values{_where(event)}")
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlLimitError(f"more than {MAX_ALIASES} aliases{_where(event)}")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels{_where(event)}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Node) -> Any:
        size = _expanded_size(node)
        if size > MAX_NODES:
            raise YamlLimitError(
                f"a document expands to more than {MAX_NODES} values (aliases counted "
                f"where they are used){_where(node)}"
            )
        return super().construct_document(node)


def _expanded_size(root: Node) -> int:
    """Nodes of `root` with every alias expanded, computed over the graph (each node once)."""
    memo: dict[int, int] = {}
    # iterative post-order: no recursion however the graph is shaped
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in memo:
            continue
        children = _children(node)
        if done:
            total = 1 + sum(memo.get(id(c), 0) for c in children)
            memo[id(node)] = min(total, MAX_NODES + 1)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in memo)
    return memo[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def read_text(path: str) -> str:
    """The file's text (`-` is stdin), refusing more than `MAX_BYTES`; OSError/Unicode pass on."""
    if path == "-":
        data = sys.stdin.buffer.read(MAX_BYTES + 1)
    else:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise YamlLimitError(f"larger than {MAX_BYTES} bytes")
    return data.decode("utf-8")


def load_all(text: str) -> list[Any]:
    """Every document of `text`, empty ones left out; raises `YamlLimitError` (one line)."""
    if len(text) > MAX_BYTES:
        raise YamlLimitError(f"larger than {MAX_BYTES} bytes")
    loader = _BoundedLoader(text)
    documents = []
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            document = loader.get_data()
            if document is not None:
                documents.append(document)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise YamlLimitError(f"invalid YAML{where}: {problem}") from None
    except RecursionError:  # a backstop: MAX_DEPTH should always come first
        raise YamlLimitError("nested too deeply") from None
    finally:
        loader.dispose()
    return documents
