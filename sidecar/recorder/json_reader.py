"""Reading a JSON body's structure without building its values: the shape and the value
kinds of each tensor, and where in the body it is, never deeper than `MAX_DEPTH` levels.

The REST recorder needs an input's shape and dtype, not its values (a sample, which is
small, is read from the byte range found here). ``json.loads`` builds every value (a body
of numbers takes about eight times its size in Python objects) and recurses once per
nesting level, so a deeply nested body raised RecursionError. `JsonReader` reads the body
token by token, a whole list of numbers in one match, and keeps per value only its
shape, kinds and byte range; refusing a body nested deeper than `MAX_DEPTH` bounds both
its recursion and its memory, the body aside.

Its JSON is Python's (``json.loads``): ``NaN``, ``Infinity`` and ``-Infinity`` are numbers;
but the body must be UTF-8 and its strings text (no lone UTF-16 surrogate escape). A body
it cannot read raises ValueError, whose message completes "the body is ...": ``not JSON
(...)``, ``ragged (...)``, ``nested deeper than ...`` or ``too wide (...)``, each saying
at which byte.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

MAX_DEPTH: Final = 64
"""Deepest nesting of lists and objects read; no tensor is nearly that deep (TF Serving's
own tensors have at most 254 dimensions, real ones a handful)."""

_WS: Final = rb"[ \t\n\r]*"
_NUMBER: Final = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|NaN|-?Infinity"
_RUN: Final = rb"(?:" + _NUMBER + rb")(?:" + _WS + rb"," + _WS + rb"(?:" + _NUMBER + rb"))*"
# Possessive quantifiers: an unterminated string fails in linear time, not by backtracking.
# A \\u escape of a UTF-16 surrogate must be one of a pair: a lone one is no text (Python
# would decode it into a str that cannot be encoded, TF Serving's rapidjson refuses it).
_STRING: Final = (rb'"(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u(?![dD][89a-fA-F])[0-9a-fA-F]{4}'
                  rb'|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})*+"')
_SINGLE: Final = (rb"(?P<open>[\[{])|(?P<close>[\]}])|(?P<comma>,)|(?P<colon>:)"
                  rb"|(?P<string>" + _STRING + rb")|(?P<number>" + _NUMBER + rb")"
                  rb"|(?P<literal>true|false|null)")
_TOKEN: Final = re.compile(_WS + rb"(?:" + _SINGLE + rb")")
"""One token."""
_ELEMENT: Final = re.compile(
    _WS + rb"(?:(?P<flat>\[" + _WS + rb"(?P<items>" + _RUN + rb")?" + _WS + rb"\])"
    rb"|(?P<run>" + _RUN + rb")|" + _STRING + rb")" + _WS + rb"(?P<separator>[,\]])")
"""A list's element and the separator after it, when the element is a list of numbers, a
run of numbers or a string."""
_NUMBERS: Final = "numbers"
"""The kind of numbers until a tensor is read (then ``int`` or ``number``)."""
_FRACTION: Final = re.compile(rb"[.eEIN]")
_SPACE: Final = re.compile(_WS)
_UTF8_CHUNK: Final = 1 << 20
_LITERAL_KINDS: Final = {b"true": "bool", b"false": "bool", b"null": "null"}


@dataclass(frozen=True)
class TensorRead:
    """A JSON value read as a tensor."""

    shape: tuple[int, ...]
    """Its lengths at each level (``()`` for a scalar); every list at one level is as long."""
    kinds: frozenset[str]
    """The kinds of its values: ``bool``, ``int``, ``number`` (any with a fraction or an
    exponent: a list of numbers holding both is ``number``), ``string``, ``null``, ``b64``
    (an object of one string named ``b64``, TF Serving's bytes) and ``object``."""
    span: tuple[int, int]
    """The byte range of the value in the body."""


class JsonReader:
    """Reads one JSON document front to back: the caller asks for each value in turn as
    what it expects (`members`, `elements`, `tensor`, `string`, `skip`), then `end`."""

    def __init__(self, body: bytes) -> None:
        """``body``: the document; ValueError when it is not UTF-8."""
        _check_utf8(body)
        self._body = body
        self._position = 0
        self._depth = 0

    def kind(self) -> str:
        """The kind of the next value, without reading it: ``object``, ``list`` or a
        value kind (see `TensorRead.kinds`, where ``object`` includes ``b64``)."""
        token = self._match(_TOKEN)
        text = token[0][-1:]
        if token.lastgroup == "open":
            return "object" if text == b"{" else "list"
        return self._scalar_kind(token)

    def members(self) -> Iterator[str]:
        """The names of the next value's members, which must be an object: read each
        member's value before asking for the next name."""
        self._open(b"{", "an object")
        return self._members_of_open()

    def _members_of_open(self) -> Iterator[str]:
        # '{' is read.
        if self._close_now(b"}"):
            return
        while True:
            token = self._take(_TOKEN)
            if token.lastgroup != "string":
                raise self._error("a member name", token)
            self._expect("colon", "':'")
            yield _text(token["string"])
            separator = self._take(_TOKEN)
            if separator.lastgroup == "close" and separator[0].endswith(b"}"):
                self._depth -= 1
                return
            if separator.lastgroup != "comma":
                raise self._error("',' or '}'", separator)

    def elements(self) -> Iterator[int]:
        """The indexes of the next value's elements, which must be a list: read each
        element before asking for the next."""
        self._open(b"[", "a list")
        return self._elements_of_open()

    def _elements_of_open(self) -> Iterator[int]:
        # '[' is read.
        index = 0
        if self._close_now(b"]"):
            return
        while True:
            yield index
            index += 1
            separator = self._take(_TOKEN)
            if separator.lastgroup == "close" and separator[0].endswith(b"]"):
                self._depth -= 1
                return
            if separator.lastgroup != "comma":
                raise self._error("',' or ']'", separator)

    def string(self) -> str | None:
        """The next value if it is a string; else None (and the value is read past)."""
        if self._match(_TOKEN).lastgroup == "string":
            return _text(self._take(_TOKEN)["string"])
        self.skip()
        return None

    def tensor(self) -> TensorRead:
        """The next value as a tensor: its shape, kinds and range. ValueError when its
        lists are ragged (of different lengths or depths at one level), as TF Serving
        refuses them."""
        kinds: set[str] = set()
        token = self._take(_TOKEN)
        start = token.start(token.lastgroup or 0)
        shape = self._value(token, kinds, True)
        if _NUMBERS in kinds:
            # Whether any number has a fraction is asked once of the whole value. A string
            # in it may hold such a letter, but then the value mixes kinds, which no dtype
            # accepts: the answer only changes which kind an error names.
            kinds.remove(_NUMBERS)
            kinds.add("number" if _FRACTION.search(self._body, start, self._position)
                      else "int")
        return TensorRead(shape, frozenset(kinds), (start, self._position))

    def named_tensors(self, most: int) -> dict[str, TensorRead] | TensorRead:
        """The next value, an object, as its members read as tensors (a repeated name
        keeps its last value); or as one ``b64`` tensor when it is TF Serving's bytes
        (``{"b64": "..."}``). ValueError when it names more than ``most``."""
        start = self._match(_TOKEN).start("open")
        tensors: dict[str, TensorRead] = {}
        for name in self.members():
            tensors[name] = self.tensor()
            if len(tensors) > most:
                raise ValueError(f"too wide (an object at byte {start} names more than "
                                 f"{most} inputs)")
        only = tensors.get("b64")
        if len(tensors) == 1 and only is not None and only.kinds == {"string"} \
                and only.shape == ():
            return TensorRead((), frozenset({"b64"}), (start, self._position))
        return tensors

    def skip(self) -> None:
        """Read past the next value, whatever it holds."""
        self._value(self._take(_TOKEN), set(), False)

    def end(self) -> None:
        """Check that nothing but white space follows the document."""
        where = _SPACE.match(self._body, self._position).end()  # type: ignore[union-attr]
        if where < len(self._body):
            raise ValueError(f"not JSON (extra data at byte {where})")

    def _value(self, token: re.Match[bytes], kinds: set[str], ragged_check: bool
               ) -> tuple[int, ...]:
        group = token.lastgroup
        if group == "open":
            if token[0].endswith(b"["):
                return self._list(kinds, ragged_check)
            kinds.add(self._object_kind())
        elif group == "number":
            kinds.add(_NUMBERS)
        elif group in ("string", "literal"):
            kinds.add(self._scalar_kind(token))
        else:
            raise self._error("a value", token)
        return ()

    def _list(self, kinds: set[str], ragged_check: bool) -> tuple[int, ...]:
        # '[' is read. A list of numbers, a run of numbers or a string, with the separator
        # after it, is one match (most of a tensor body is these); anything else is read
        # token by token.
        self._enter()
        if self._close_now(b"]"):
            return (0,)
        body = self._body
        count = 0
        element: tuple[int, ...] | None = None
        while True:
            begin = self._position
            token = _ELEMENT.match(body, begin)
            separator = token["separator"] if token is not None else None
            shape: tuple[int, ...] = ()
            if separator is None:
                shape = self._value(self._take(_TOKEN), kinds, ragged_check)
                count += 1
                after = self._take(_TOKEN)
                if after.lastgroup == "comma":
                    separator = b","
                elif after.lastgroup == "close" and after[0].endswith(b"]"):
                    separator = b"]"
                else:
                    raise self._error("',' or ']'", after)
            else:
                assert token is not None
                self._position = token.end()
                if token["flat"] is not None:
                    if self._depth == MAX_DEPTH:  # the flat list is one level more
                        self._position = token.start("flat") + 1
                        self._enter()
                    start = token.start("items")
                    shape = (0 if start < 0 else body.count(b",", start, token.end("items")) + 1,)
                    if start >= 0:
                        kinds.add(_NUMBERS)
                    count += 1
                elif token["run"] is not None:
                    count += body.count(b",", *token.span("run")) + 1
                    kinds.add(_NUMBERS)
                else:
                    kinds.add("string")
                    count += 1
            if element is None:
                element = shape
            elif shape != element and ragged_check:
                at = _SPACE.match(body, begin).end()  # type: ignore[union-attr]
                raise ValueError(f"ragged (the value at byte {at} is of shape {shape}, the "
                                 f"list's first of shape {element}), which TF Serving refuses")
            if separator == b"]":
                self._depth -= 1
                return (count, *(element or ()))

    def _object_kind(self) -> str:
        # '{' is read: an object within a tensor is a value of it, kind b64 when it is TF
        # Serving's bytes ({"b64": "..."}: as json.loads reads it, a repeated name keeps its
        # last value), else object.
        self._enter()
        others = 0
        b64 = False
        for name in self._members_of_open():
            if name == "b64":
                b64 = self.string() is not None
            else:
                others += 1
                self.skip()
        return "b64" if b64 and not others else "object"

    def _scalar_kind(self, token: re.Match[bytes]) -> str:
        group = token.lastgroup
        if group == "string":
            return "string"
        if group == "number":
            return "number" if _FRACTION.search(token[0]) else "int"
        if group == "literal":
            return _LITERAL_KINDS[token["literal"]]
        raise self._error("a value", token)

    def _open(self, opener: bytes, what: str) -> None:
        token = self._take(_TOKEN)
        if token.lastgroup != "open" or not token[0].endswith(opener):
            self._position = token.start(token.lastgroup or 0)
            raise ValueError(f"not JSON TF Serving reads (expected {what} at byte "
                             f"{self._position})")
        self._enter()

    def _close_now(self, closer: bytes) -> bool:
        """Read ``closer`` if it comes next (an empty list or object)."""
        token = self._match(_TOKEN)
        if token.lastgroup == "close" and token[0].endswith(closer):
            self._position = token.end()
            self._depth -= 1
            return True
        return False

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels (at byte "
                             f"{self._position - 1}), deeper than any tensor")

    def _expect(self, group: str, what: str) -> None:
        token = self._take(_TOKEN)
        if token.lastgroup != group:
            raise self._error(f"a {what}", token)

    def _match(self, pattern: re.Pattern[bytes]) -> re.Match[bytes]:
        token = pattern.match(self._body, self._position)
        if token is None:
            where = _SPACE.match(self._body, self._position).end()  # type: ignore[union-attr]
            if where == len(self._body):
                raise ValueError(f"not JSON (it ends early, at byte {where})")
            raise ValueError(f"not JSON (unexpected {self._body[where:where + 12]!r} at "
                             f"byte {where})")
        return token

    def _take(self, pattern: re.Pattern[bytes]) -> re.Match[bytes]:
        token = self._match(pattern)
        self._position = token.end()
        return token

    @staticmethod
    def _error(expected: str, token: re.Match[bytes]) -> ValueError:
        start = token.start(token.lastgroup or 0)
        found = token[token.lastgroup or 0][:12]
        return ValueError(f"not JSON (expected {expected} at byte {start}, found {found!r})")


def _text(token: bytes) -> str:
    """A string token's text (escapes are rare: only those need the JSON decoder)."""
    if b"\\" in token:
        text: str = json.loads(token)
        return text
    return token[1:-1].decode("utf-8")


def _check_utf8(body: bytes) -> None:
    # In chunks: a decoded copy of a large body would cost up to four times its size.
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    for start in range(0, len(body), _UTF8_CHUNK):
        try:
            decoder.decode(view[start:start + _UTF8_CHUNK], start + _UTF8_CHUNK >= len(body))
        except UnicodeDecodeError as error:
            raise ValueError(f"not JSON (not UTF-8 at byte {start + error.start})") from None
