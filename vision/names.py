"""One check for names that become file or folder names, and one escape per output format.

Every name a user or a file may supply that ends up in a path (Triton models, galleries, brands, zoo entries)
goes through :func:`check_plain_name`; every string written into a Triton ``config.pbtxt`` through
:func:`pbtxt_string`; every entry of a one-per-line text list (``labels.txt``, ``keep.txt``) through
:func:`text_line`. HTML is escaped with :func:`html.escape` (``quote=True``) at each page's one writer.
"""

from __future__ import annotations

import re

PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_LINE_BREAKS = re.compile(r"[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def check_plain_name(name, what: str, error: type[Exception] = ValueError) -> str:
    """``name`` if it is a plain file name (letters, digits, ``. _ + -``; no separator, no ``..``, not hidden),
    else ``error`` naming ``what`` and the rule.

    Example::

        check_plain_name("grocery_resnet10t", "Triton model name")   # ok
        check_plain_name("../../x", "Triton model name")              # ValueError
    """
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name) or ".." in name:
        raise error(f"{what} {name!r} is not a plain name: use 1-128 letters, digits, '.', '_', '+' or '-', "
                    "starting with a letter or digit, without '..' (it becomes a file or folder name)")
    return name


def pbtxt_string(value: str, what: str, error: type[Exception] = ValueError) -> str:
    """``value`` as a quoted protobuf text-format string; control characters are refused, not escaped."""
    if not isinstance(value, str) or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise error(f"{what} {value!r} contains a control character (a newline, say): it cannot be written into "
                    "config.pbtxt")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_line(value: str, what: str, error: type[Exception] = ValueError) -> str:
    """``value`` checked to fit on one line of a one-entry-per-line list (no line break of any kind)."""
    if not isinstance(value, str) or _LINE_BREAKS.search(value):
        raise error(f"{what} {value!r} contains a line break: a one-per-line list would split it into two "
                    "entries; rename it")
    return value
