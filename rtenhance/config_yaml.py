"""Bounded YAML for configuration files and ``--set`` values.

``yaml.safe_load`` runs no code but still lets a few hundred bytes grow without limit: an anchor bomb
(lists of aliases of lists of aliases) expands to billions of items once anything walks it, and deep
nesting exhausts the stack. ``load_yaml`` bounds the document's size, the number of aliases and the
nesting depth before anything is built, rejects duplicate keys (YAML says they are an error, PyYAML keeps
the last one silently), and reads ``1e9`` as a number as YAML 1.2 does (YAML 1.1 needs ``1.0e+9``).
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node

MAX_DOCUMENT_CHARS = 1 << 20  # 1 MiB: a configuration is a few hundred bytes
MAX_ALIASES = 64  # alias (*name) uses per document; a configuration needs none
MAX_DEPTH = 32  # nested collections; a configuration has two levels
MERGE_KEY = "tag:yaml.org,2002:merge"

# YAML 1.2 floats: an exponent without a dot (1e9) is a number too.
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class YamlLimitError(yaml.YAMLError):
    """A document over one of the bounds; ``problem`` says which."""

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and depth while composing, and refuses duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlLimitError(f"more than {MAX_ALIASES} aliases (*name)", self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_KEY:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if duplicate:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return SafeConstructor.construct_mapping(self, node, deep=deep)


_BoundedLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse one YAML document within the bounds above.

    Args:
        text: the document.

    Returns:
        Plain data (dicts, lists, strings, numbers, booleans, None).

    Raises:
        yaml.YAMLError: invalid YAML, a duplicate key, or a document over a bound (``YamlLimitError``).
    """
    if len(text) > MAX_DOCUMENT_CHARS:
        raise YamlLimitError(f"{len(text)} characters; at most {MAX_DOCUMENT_CHARS} are read")
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
