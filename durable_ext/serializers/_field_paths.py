"""Field paths: their grammar, the trie they compile to, and the one walk both directions share.

Grammar (a comma-separated list of paths)::

    path    := segment ( "." segment | "[" index "]" )*
    segment := NAME | "*"            a mapping key or object field; "*" is every key
    index   := DIGITS | "*"          a list or tuple position (or an int key); "*" is every one

``customer.email``, ``cards[*].number``, ``accounts.*.iban``, ``[*].sku`` (every item of a
top-level list). NAME is letters, digits, ``_``, ``-``, ``$``, ``@``, ``:`` and ``/``.

A concrete path (what a selected field's position is) is a tuple of ``str`` and ``int``
segments: mapping keys, object fields (by the key the format stores them under) and
sequence positions. The encoder and the decoder run the same :func:`walk` over the same
patterns, so both visit the selected fields in the same order: the order of a node's
children when a wildcard is active there, else the order the patterns name them in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import Any, Final

from durable_ext.errors import ConfigError, SerializationError

__all__ = [
    "ANY_INDEX",
    "ANY_KEY",
    "MAX_SEGMENTS",
    "STEPS",
    "Container",
    "Finder",
    "Path",
    "Pattern",
    "Sealer",
    "Steps",
    "Trie",
    "compile_patterns",
    "format_path",
    "format_pattern",
    "pack_patterns",
    "parse_paths",
    "unpack_patterns",
    "walk",
]

#: most segments in one path (deeper fields cannot be selected)
MAX_SEGMENTS = 32


class _Wild:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


ANY_KEY: Final = _Wild("*")
ANY_INDEX: Final = _Wild("[*]")

Segment = str | int | _Wild
Pattern = tuple[Segment, ...]
Path = tuple[str | int, ...]

_NAME = re.compile(r"[A-Za-z0-9_\-$@:/]+")
_INDEX = re.compile(r"\[(\*|\d{1,9})\]")


def parse_paths(text: str | Iterable[str], where: str = "fields") -> tuple[Pattern, ...]:
    """Parse ``"customer.email,cards[*].number"`` (or a list of such paths)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[Pattern] = []
    for raw in items:
        if not isinstance(raw, str):
            raise ConfigError(f"{where}: a path is a string, got {type(raw).__name__}")
        p = raw.strip()
        if not p:
            raise ConfigError(f"{where}: empty path in {text!r}")
        out.append(_parse_one(p, where))
    if len(set(out)) != len(out):
        raise ConfigError(f"{where}: a path is given twice in {text!r}")
    return tuple(out)


def _parse_one(p: str, where: str) -> Pattern:
    segs: list[Segment] = []
    pos = 0
    expect_name = not p.startswith("[")
    while pos < len(p):
        if p[pos] == "[":
            m = _INDEX.match(p, pos)
            if m is None:
                raise ConfigError(f"{where}: bad index at position {pos} of path {p!r} "
                                  "(write [N] or [*])")
            segs.append(ANY_INDEX if m.group(1) == "*" else int(m.group(1)))
            pos = m.end()
            expect_name = False
            continue
        if not expect_name:
            if p[pos] != ".":
                raise ConfigError(f"{where}: expected '.' or '[' at position {pos} of path {p!r}")
            pos += 1
        if p.startswith("*", pos) and (pos + 1 == len(p) or p[pos + 1] in ".["):
            segs.append(ANY_KEY)
            pos += 1
        else:
            m = _NAME.match(p, pos)
            if m is None:
                raise ConfigError(f"{where}: bad field name at position {pos} of path {p!r}")
            segs.append(m.group())
            pos = m.end()
        expect_name = False
    if not segs or len(segs) > MAX_SEGMENTS:
        raise ConfigError(f"{where}: path {p!r} must have 1 to {MAX_SEGMENTS} segments")
    return tuple(segs)


def format_path(path: Sequence[str | int | _Wild]) -> str:
    """Show a path as it is written: ``cards[3].number``."""
    out: list[str] = []
    for seg in path:
        if isinstance(seg, int) or seg is ANY_INDEX:
            out.append(f"[{seg}]")
        else:
            text = str(seg)
            out.append(text if not out else f".{text}")
    return "".join(out)


format_pattern = format_path


def pack_patterns(patterns: Sequence[Pattern]) -> list[list[Any]]:
    """Return the stored form: ``str``/``int`` as is, ``*`` as nil, ``[*]`` as false."""
    return [[None if s is ANY_KEY else False if s is ANY_INDEX else s for s in p]
            for p in patterns]


def unpack_patterns(data: Any, max_patterns: int) -> tuple[Pattern, ...]:
    """Validate and read the stored form; ``ValueError`` says what is wrong."""
    if not isinstance(data, list) or not 0 < len(data) <= max_patterns:
        raise ValueError("bad pattern list")
    out: list[Pattern] = []
    for p in data:
        if not isinstance(p, list) or not 0 < len(p) <= MAX_SEGMENTS:
            raise ValueError("bad pattern")
        segs: list[Segment] = []
        for s in p:
            if s is None:
                segs.append(ANY_KEY)
            elif s is False:
                segs.append(ANY_INDEX)
            elif type(s) is int or (type(s) is str and len(s) <= 1024):
                segs.append(s)
            else:
                raise ValueError("bad pattern segment")
        out.append(tuple(segs))
    return tuple(out)


class Trie:
    """Patterns merged by prefix; ``end`` is set where a pattern ends."""

    __slots__ = ("any_index", "any_key", "end", "leafy", "lit", "plans")

    def __init__(self) -> None:
        self.plans: dict[bool, _Plan] = {}
        #: set by compile_patterns where every child is a literal that ends a pattern and
        #: nothing ends here: the keys a dict node is selected at
        self.leafy: tuple[Any, ...] | None = None
        self.lit: dict[str | int, Trie] = {}
        self.any_key: Trie | None = None
        self.any_index: Trie | None = None
        self.end = False

    def child(self, seg: Segment) -> Trie:
        """Return (making it) the child for ``seg``."""
        if seg is ANY_KEY:
            if self.any_key is None:
                self.any_key = Trie()
            return self.any_key
        if seg is ANY_INDEX:
            if self.any_index is None:
                self.any_index = Trie()
            return self.any_index
        assert isinstance(seg, str | int)
        node = self.lit.get(seg)
        if node is None:
            node = self.lit[seg] = Trie()
        return node


def compile_patterns(patterns: Iterable[Pattern]) -> Trie:
    """Merge ``patterns`` into one :class:`Trie`."""
    root = Trie()
    for p in patterns:
        node = root
        for seg in p:
            node = node.child(seg)
        node.end = True
    _mark_leafy(root)
    return root


def _mark_leafy(node: Trie) -> None:
    subs = list(node.lit.values())
    if (node.lit and not node.end and node.any_key is None and node.any_index is None
            and all(s.end for s in subs)):
        node.leafy = tuple(node.lit)
    for s in subs:
        _mark_leafy(s)
    for w in (node.any_key, node.any_index):
        if w is not None:
            _mark_leafy(w)


#: what a walk sees of a node: ("map" | "seq" | "batch", its children, the stored key of
#: each field name, how to rebuild the node from changed children) or None for a leaf
Container = tuple[str, Any, Any, Callable[[Any], Any]]
#: ``leaf(value, path, parent, key)``: what takes a selected node's place (``parent`` is the
#: dict or list of children it was found in, ``None`` for the node a walk starts at)
Leaf = Callable[[Any, Path, Any, Any], Any]


class _Plan:
    """Which children a set of trie nodes selects in a map or a sequence, worked out once."""

    __slots__ = ("lits", "order", "wild", "wild_end")

    def __init__(self, tries: list[Trie], is_map: bool, keymap: Any) -> None:
        lits: dict[Any, list[Trie]] = {}
        for t in tries:
            for seg, sub in t.lit.items():
                key = _stored_key(seg, is_map, keymap)
                if key is not None:
                    lits.setdefault(key, []).append(sub)
        wild = [w for t in tries for w in ((t.any_key,) if is_map else (t.any_index,))
                if w is not None]
        self.wild: list[Trie] | None = wild or None
        self.wild_end = any(w.end for w in wild)
        #: with wildcards: literal key -> wildcard nodes and its own; without: the literal
        #: children in the order the patterns name them (the same on both sides)
        self.lits = {k: (wild + subs, any(x.end for x in subs) or self.wild_end)
                     for k, subs in lits.items()}
        self.order = [(k, subs, end) for k, (subs, end) in self.lits.items()]


def _plan(tries: list[Trie], is_map: bool, keymap: Any) -> _Plan:
    if len(tries) == 1 and keymap is None:
        t = tries[0]
        cache = t.plans
        plan = cache.get(is_map)
        if plan is None:
            plan = cache[is_map] = _Plan(tries, is_map, None)
        return plan
    return _Plan(tries, is_map, keymap)


def walk(node: Any, tries: list[Trie], path: Path, leaf: Leaf,
         container: Callable[[Any], Container | None], inplace: bool = False) -> Any:
    """Visit every node ``tries`` select below ``node``; return it, rebuilt where changed.

    ``leaf`` returns what takes a selected node's place (see :data:`Leaf`); the walk never goes
    below a selected node. ``container(node)`` says what the walk sees of a node. With
    ``inplace`` (a freshly decoded value, every selected node replaced), lists and dicts
    are changed where they are.
    """
    for t in tries:
        if t.end:
            return leaf(node, path, None, None)
    # Plain dicts and lists are most nodes: seen here without a call.
    nt = type(node)
    rebuild: Callable[[Any], Any]
    if nt is dict or nt is list:
        items, keymap, rebuild = node, None, _same
        is_map = nt is dict
    else:
        c = container(node)
        if c is None:
            return node
        if nt is not tuple and (type(leaf) is Sealer or type(leaf) is Finder):
            # Below an object, sealed fields are marked so the format can tell (it builds
            # such objects only once they are back): see Sealer.
            leaf.inside += 1
            try:
                return _walk_container(node, c, tries, path, leaf, container, inplace)
            finally:
                leaf.inside -= 1
        return _walk_container(node, c, tries, path, leaf, container, inplace)
    return _walk_items(node, items, is_map, keymap, rebuild, tries, path, leaf, container,
                       inplace)


def _walk_container(node: Any, c: Container, tries: list[Trie], path: Path, leaf: Leaf,
                    container: Callable[[Any], Container | None], inplace: bool) -> Any:
    kind, items, keymap, rebuild = c
    if kind == "batch":
        rebuilt = _walk_batch(items, tries, path, leaf, container, rebuild, inplace)
        return node if rebuilt is None else rebuilt
    return _walk_items(node, items, kind == "map", keymap, rebuild, tries, path, leaf,
                       container, inplace)


def _walk_items(node: Any, items: Any, is_map: bool, keymap: Any,
                rebuild: Callable[[Any], Any], tries: list[Trie], path: Path, leaf: Leaf,
                container: Callable[[Any], Container | None], inplace: bool) -> Any:
    if len(tries) == 1 and keymap is None:
        plan = tries[0].plans.get(is_map) or _plan(tries, is_map, None)
    else:
        plan = _Plan(tries, is_map, keymap)
    steps = STEPS.get()
    if steps is not None:
        # What this node costs to look through: its children, or the literals named here.
        steps.spend(len(items) if plan.wild is not None else len(plan.order),
                    sum(len(t.lit) for t in tries) if len(tries) > 1 else 0)
    changed: Any = None
    if not is_map and plan.wild is not None and not plan.lits and len(plan.wild) == 1:
        w = plan.wild[0]
        if w.leafy is not None:
            return _leafy_list(node, items, w, path, leaf, container, inplace, rebuild)
    pairs = plan.order if plan.wild is None else _wild_pairs(items, is_map, plan)
    size = len(items)
    for key, subs, end in pairs:
        if is_map:
            if key not in items:
                continue
        elif type(key) is not int or not 0 <= key < size:
            continue
        value = items[key]
        if end:
            new = leaf(value, (*path, key), items, key)
        elif type(value) is dict and len(subs) == 1 and subs[0].leafy is not None:
            new = _leaf_map(value, subs[0].leafy, (*path, key), leaf, inplace)
        else:
            new = walk(value, subs, (*path, key), leaf, container, inplace)
        # In place, every visited child counts as changed: a dict changed where it is
        # stays the same object, yet an object or tuple holding it must be rebuilt.
        if new is not value or inplace:
            if changed is None:
                if inplace and (type(items) is dict or type(items) is list):
                    changed = items
                else:
                    changed = dict(items) if is_map else list(items)
            changed[key] = new
    return node if changed is None else rebuild(changed)


def _same(changed: Any) -> Any:
    return changed


class Steps:
    """How many child visits a walk may still make: bounds what hostile paths can cost."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, children: int, planning: int) -> None:
        """Count a node's visits; raise once past the limit."""
        self.left -= children + planning
        if self.left < 0:
            raise SerializationError(
                f"fields: the paths make more than {self.limit} visits to select fields "
                "(max_items); raise it with limits={'max_items': N} if such payloads are "
                "expected"
            )


#: the visits the current walks may still make (set by the fields stage per payload)
STEPS: ContextVar[Steps | None] = ContextVar("durable_ext_field_steps", default=None)


class Sealer:
    """A leaf that takes each selected value out and leaves a mark in its place.

    The mark is ``None`` where no object encloses the field (the paths say where the
    fields were; a ``None`` costs one byte and nothing to decode), and ``mark`` (which the
    format tells apart from any value) inside objects, which the format must not build
    before their fields are back.
    """

    __slots__ = ("inside", "mark", "paths", "values")

    def __init__(self, mark: Any) -> None:
        self.mark = mark
        self.inside = 0
        self.paths: list[Path] = []
        self.values: list[Any] = []

    def __call__(self, value: Any, path: Path, parent: Any, key: Any) -> Any:
        self.paths.append(path)
        self.values.append(value)
        return self.mark if self.inside else None


class Finder:
    """A leaf that records where each selected node is, and the first that is not a mark.

    It expects what :class:`Sealer` leaves: ``None``, or ``mark`` inside objects, and
    counts the latter in ``sealed`` (the format counts those it read).
    """

    __slots__ = ("bad", "inside", "mark", "paths", "sealed", "slots")

    def __init__(self, mark: Any) -> None:
        self.mark = mark
        self.inside = 0
        self.sealed = 0
        self.paths: list[Path] = []
        #: (the dict or list holding the node, its key); None for the node walked from
        self.slots: list[tuple[Any, Any] | None] = []
        self.bad: Path | None = None

    def __call__(self, value: Any, path: Path, parent: Any, key: Any) -> Any:
        if self.inside:
            self.sealed += 1
            if value is not self.mark and self.bad is None:
                self.bad = path
        elif value is not None and self.bad is None:
            self.bad = path
        self.paths.append(path)
        self.slots.append(None if parent is None else (parent, key))
        return value


def _leafy_list(node: Any, items: Any, w: Trie, path: Path, leaf: Leaf,
                container: Callable[[Any], Container | None], inplace: bool,
                rebuild: Callable[[Any], Any]) -> Any:
    # ``[*].a,[*].b``: every item of a list, each a dict whose selected keys are leaves.
    # The hot case of large payloads, so the loop is written out, and written out again
    # for the two leaves the fields stage uses most.
    keys = w.leafy
    assert keys is not None
    steps = STEPS.get()
    if steps is not None:
        steps.spend(len(items) * len(keys), 0)
    tries = [w]
    changed: Any = None
    lt = type(leaf)
    if lt is Sealer and not inplace:
        return _seal_list(node, items, keys, tries, path, leaf, container, rebuild)  # type: ignore[arg-type]
    if lt is Finder and not inplace:
        _find_list(items, keys, tries, path, leaf, container)  # type: ignore[arg-type]
        return node
    for i, value in enumerate(items):
        if type(value) is dict:
            new: Any = value
            for k in keys:
                if k in value:
                    v = value[k]
                    n = leaf(v, (*path, i, k), value, k)
                    if n is not v or inplace:
                        if new is value and not inplace:
                            new = dict(value)
                        new[k] = n
        else:
            new = walk(value, tries, (*path, i), leaf, container, inplace)
        if new is not value or inplace:
            if changed is None:
                changed = items if inplace and type(items) is list else list(items)
            changed[i] = new
    return node if changed is None else rebuild(changed)


def _seal_list(node: Any, items: Any, keys: tuple[Any, ...], tries: list[Trie], path: Path,
               sealer: Sealer, container: Callable[[Any], Container | None],
               rebuild: Callable[[Any], Any]) -> Any:
    paths, values = sealer.paths, sealer.values
    mark = sealer.mark if sealer.inside else None
    changed: Any = None
    for i, value in enumerate(items):
        if type(value) is dict:
            new: Any = None
            for k in keys:
                if k in value:
                    if new is None:
                        new = dict(value)
                    paths.append((*path, i, k))
                    values.append(value[k])
                    new[k] = mark
            if new is None:
                continue
        else:
            new = walk(value, tries, (*path, i), sealer, container)
            if new is value:
                continue
        if changed is None:
            changed = list(items)
        changed[i] = new
    return node if changed is None else rebuild(changed)


def _find_list(items: Any, keys: tuple[Any, ...], tries: list[Trie], path: Path,
               finder: Finder, container: Callable[[Any], Container | None]) -> None:
    paths, slots = finder.paths, finder.slots
    inside = finder.inside
    mark = finder.mark if inside else None
    for i, value in enumerate(items):
        if type(value) is dict:
            for k in keys:
                if k in value:
                    if value[k] is not mark and finder.bad is None:
                        finder.bad = (*path, i, k)
                    if inside:
                        finder.sealed += 1
                    paths.append((*path, i, k))
                    slots.append((value, k))
        else:
            walk(value, tries, (*path, i), finder, container)


def _leaf_map(node: dict[Any, Any], keys: tuple[Any, ...], path: Path, leaf: Leaf,
              inplace: bool) -> Any:
    # The most common last step (``[*].email``): a dict whose selected keys are all
    # leaves, handled without a walk per dict.
    steps = STEPS.get()
    if steps is not None:
        steps.spend(len(keys), 0)
    changed: Any = None
    for key in keys:
        if key in node:
            value = node[key]
            new = leaf(value, (*path, key), node, key)
            if new is not value or inplace:
                if changed is None:
                    changed = node if inplace else dict(node)
                changed[key] = new
    return node if changed is None else changed


def _wild_pairs(items: Any, is_map: bool, plan: _Plan) -> Iterable[tuple[Any, list[Trie], bool]]:
    wild = plan.wild
    end = plan.wild_end
    lits = plan.lits
    if is_map:
        for key in items:
            if type(key) is str or type(key) is int:  # only these can be named in a path
                hit = lits.get(key)
                yield (key, *hit) if hit is not None else (key, wild, end)  # type: ignore[misc]
    else:
        for key in range(len(items)):
            hit = lits.get(key)
            yield (key, *hit) if hit is not None else (key, wild, end)  # type: ignore[misc]


def _stored_key(seg: str | int, is_map: bool, keymap: Any) -> Any:
    if is_map:
        if keymap is not None and type(seg) is str:
            return keymap.get(seg, seg)
        return seg
    if type(seg) is int:
        return seg
    # A field name on an object stored as a list (a NamedTuple): its position.
    if keymap is not None:
        return keymap.get(seg)
    return None


def _walk_batch(fields: Any, tries: list[Trie], path: Path, leaf: Leaf,
                container: Callable[[Any], Container | None],
                rebuild: Callable[[Any], Any], inplace: bool) -> Any:
    # A map or parallel BatchResult: the patterns apply to each item's result.
    items = fields.get("all") if isinstance(fields, dict) else None
    if not isinstance(items, list):
        return None
    new_items: list[Any] | None = None
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "result" not in item:
            continue
        value = item["result"]
        new = walk(value, tries, (*path, "all", i, "result"), leaf, container, inplace)
        if new is not value or inplace:
            if new_items is None:
                new_items = list(items)
            new_items[i] = {**item, "result": new}
    if new_items is None:
        return None  # unchanged: the caller keeps the node
    return rebuild({**fields, "all": new_items})
