"""Reading EDN text and normalising Python data into the engine's EDN vocabulary.

Owns: the keyword/symbol convention of the engine (see docs/datalog.md):
  * EDN text is read by ``edn_format`` (0.8.0); its ``Keyword`` and ``Symbol`` are
    the engine's keywords and symbols.
  * In Python data, strings stand in for symbols and keywords where a query needs
    them: ``"?x"``, ``"_"``, ``"$"``, ``"%"``, ``"..."`` and ``"*"`` are symbols;
    ``":kw"`` is a keyword.  Attribute names may be given with or without the colon.
  * Attribute idents are carried internally as plain strings without the colon
    (``"session/id"``); results use that spelling too.
Must never: evaluate anything or touch storage.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import edn_format
from edn_format import Keyword, Symbol

from .errors import EdnError

__all__ = ["Keyword", "Symbol", "read", "ident", "to_edn", "kw", "sym", "is_symbol", "is_keyword", "fmt"]

_SYMBOL_WORDS = {"_", "$", "%", "...", "*", "."}


_REGEX_TAG = "sessiondb/regex"
edn_format.add_tag(_REGEX_TAG, lambda s: re.compile(s))


def _regex_literals(text: str) -> str:
    """Rewrite Clojure regex literals ``#"..."`` (not EDN) into a tagged string edn_format reads."""
    if '#"' not in text:
        return text
    out, i, n, in_str = [], 0, len(text), False
    while i < n:
        ch = text[i]
        if in_str:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == "#" and text.startswith('#"', i):
            out.append(f"#{_REGEX_TAG} ")
            i += 1
            continue
        else:
            out.append(ch)
            if ch == '"':
                in_str = True
        i += 1
    return "".join(out)


def read(text: str) -> Any:
    """Read one EDN form; a reader failure becomes an ``EdnError`` naming the text."""
    if not isinstance(text, str):
        raise EdnError(f"expected an EDN string, got {type(text).__name__}")
    try:
        return edn_format.loads(_regex_literals(text))
    except Exception as exc:  # edn_format raises assorted ply/lexer errors
        snippet = text if len(text) <= 80 else text[:77] + "..."
        raise EdnError(f"cannot read EDN {fmt(snippet)}: {exc}") from None


def kw(name: str) -> Keyword:
    return Keyword(name[1:] if name.startswith(":") else name)


def sym(name: str) -> Symbol:
    return Symbol(name)


def is_symbol(x: Any) -> bool:
    return isinstance(x, Symbol)


def is_keyword(x: Any) -> bool:
    return isinstance(x, Keyword)


_IDENTS: dict[Any, str] = {}


def ident(x: Any) -> str | None:
    """The attribute ident of ``x`` (``"ns/name"``), or None if ``x`` cannot name one."""
    try:
        return _IDENTS[x]  # hot in bulk transact: a dict hit instead of type tests
    except (KeyError, TypeError):
        pass
    if isinstance(x, Keyword):
        name = x.name
    elif isinstance(x, str) and x:
        name = x[1:] if x.startswith(":") else x
    else:
        return None
    if len(_IDENTS) < 100_000:
        _IDENTS[x] = name
    return name


def to_edn(x: Any) -> Any:
    """Turn a query written as Python data into the shape ``edn_format`` would read.

    Strings that look like symbols or keywords become ``Symbol``/``Keyword``; a
    string in the function position of a list becomes a symbol (``["<", "?a", 3]``).
    Other strings stay strings.
    """
    if isinstance(x, str):
        if x.startswith("?") or x.startswith("$") or x in _SYMBOL_WORDS:
            return Symbol(x)
        if x.startswith(":") and len(x) > 1:
            return Keyword(x[1:])
        return x
    if isinstance(x, (Keyword, Symbol)):
        return x
    if isinstance(x, tuple):
        # a tuple is a list form: (fn arg ...), its head is a symbol
        return tuple(_head(i, item) for i, item in enumerate(x))
    if isinstance(x, list):
        return [_head(i, item) for i, item in enumerate(x)]
    if isinstance(x, Mapping):
        return {to_edn(k): to_edn(v) for k, v in x.items()}
    if isinstance(x, (set, frozenset)):
        return frozenset(to_edn(i) for i in x)
    return x


def _head(i: int, item: Any) -> Any:
    if i == 0 and isinstance(item, str) and not item.startswith(":") and not item.startswith("?"):
        # function position: "str/starts-with?", "<", "pull", "rule-name"
        return Symbol(item)
    return to_edn(item)


def plain(x: Any) -> Any:
    """edn_format's immutable vectors/maps -> Python lists/dicts (tx data read from EDN)."""
    if isinstance(x, (str, bytes, Keyword, Symbol)):
        return x
    if isinstance(x, Mapping):
        return {plain(k): plain(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(plain(i) for i in x)
    if isinstance(x, (frozenset, set)):
        return frozenset(plain(i) for i in x)
    if type(x).__name__ == "ImmutableList" or isinstance(x, list):
        return [plain(i) for i in x]
    return x


_FMT_LIMIT = 200


def fmt(x: Any, limit: int = _FMT_LIMIT) -> str:
    """``x`` printed as EDN for error messages: the query's own spelling, never a Python repr.

    Strings are double-quoted, ``None``/``True`` are ``nil``/``true``, tuples (list forms) are
    ``(...)``, vectors ``[...]``, sets ``#{...}``; the engine's records print the form they were
    parsed from (their ``__edn__``).  Long output is cut at ``limit`` characters with ``...``.
    """
    text = _fmt(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(x: Any) -> str:
    if x is None:
        return "nil"
    if x is True:
        return "true"
    if x is False:
        return "false"
    if isinstance(x, Symbol):
        return x.name
    if isinstance(x, Keyword):
        return ":" + x.name
    if isinstance(x, str):
        return json.dumps(x, ensure_ascii=False)
    if isinstance(x, float):
        if math.isnan(x):
            return "##NaN"
        if math.isinf(x):
            return "##Inf" if x > 0 else "##-Inf"
        return repr(x)
    if isinstance(x, int):
        return str(x)
    edn_of = getattr(type(x), "__edn__", None)
    if edn_of is not None:
        return edn_of(x)
    if isinstance(x, tuple):
        return "(" + " ".join(_fmt(i) for i in x) + ")"
    if isinstance(x, list) or type(x).__name__ == "ImmutableList":
        return "[" + " ".join(_fmt(i) for i in x) + "]"
    if isinstance(x, Mapping):
        return "{" + ", ".join(f"{_fmt(k)} {_fmt(v)}" for k, v in x.items()) + "}"
    if isinstance(x, (set, frozenset)):
        return "#{" + " ".join(sorted(_fmt(i) for i in x)) + "}"
    if isinstance(x, re.Pattern):
        return "#" + json.dumps(x.pattern, ensure_ascii=False)
    if isinstance(x, bytes):
        return "#bytes " + json.dumps(x.hex())
    if callable(x):
        return f"#fn {getattr(x, '__name__', type(x).__name__)}"
    return json.dumps(str(x), ensure_ascii=False) if type(x).__module__ in ("uuid", "datetime") else str(x)
