"""Lake names of source names: any table name becomes a name Dagster, the lake's folders and SQL all take.

The rule, applied to a source table's name (`tabWork Order` -> `tabwork_order`):
1. Latin letters lose their accents (`é` -> `e`), and letters without a decomposed form are
   spelt out (`ß` -> `ss`, `æ` -> `ae`, `ø` -> `o`, `œ` -> `oe`, `ł` -> `l`, `þ` -> `th`);
2. everything is lower-cased, and every run of characters other than `a-z` and `0-9` becomes
   one `_`, with none left at either end;
3. if a letter had no Latin form (Cyrillic, Greek, CJK...), eight hex digits of the name's
   SHA-1 are appended (or make the name, after `t_`), so that two such names stay apart.

A lake name is its own lake name. `lake_name:` in the YAML overrides the rule for one table.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

LAKE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_]*$"
_SPELT_OUT = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L"}
    | {"đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "TH", "\u0131": "i", "ĸ": "k", "ŋ": "ng"}
)
_NOT_NAME = re.compile(r"[^a-z0-9]+")


def _latin(text: str) -> tuple[str, bool]:
    """The text in ASCII, and whether some letter had no Latin form and was dropped."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPELT_OUT))
    kept = "".join(char for char in decomposed if not unicodedata.combining(char))
    lost = any(char.isalpha() and not char.isascii() for char in kept)
    return kept.encode("ascii", "ignore").decode("ascii"), lost


def lake_identifier(name: str) -> str:
    """The lake's name for a source name, by the rule above: deterministic, `[a-z0-9_]`, never empty."""
    latin, lost = _latin(name)
    slug = _NOT_NAME.sub("_", latin.lower()).strip("_")
    if lost or not slug:
        digest = hashlib.sha1(name.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
        slug = f"{slug}_{digest}" if slug else f"t_{digest}"
    return slug
