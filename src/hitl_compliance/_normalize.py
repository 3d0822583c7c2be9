"""The normalised view of text that rules match on, with a map back to the original.

A draft can hide a phrase from a naive matcher without changing what a customer
reads: a zero-width space inside a word, a no-break space between words, a
Cyrillic "а" for a Latin "a", fullwidth letters. The view built here undoes
those tricks so the built-in rules see what a reader sees:

1. characters that Unicode TS #39 lists as confusable with Latin letters mapped
   to that Latin skeleton (Cyrillic "а" to "a", Greek "Ο" to "O", OGONEK to "i"),
   using the confusables table of the `confusable_homoglyphs` package; then
   Unicode NFKC (fullwidth and mathematical letters, ligatures, compatibility
   spaces become their plain forms) and the skeleton of what NFKC made, per
   starter-and-marks cluster, so that every character of the view knows which
   original characters it came from;
2. format characters (category Cf: zero-width space/joiners, soft hyphen, BOM,
   bidi controls, tags) and the other default-ignorable marks removed;
3. every run of Unicode white space and line breaks as one space;
4. optionally case-folded (and the skeleton of the folded letters).

ASCII characters are kept as they are (TS #39 would also map "I" and "1" to
"l" and "0" to "O", which would break every regular expression over digits),
and digits are never mapped to letters, so `\\d` keeps its meaning.

Evidence must point into the original text (the inbox highlights it there), so
every character of the view carries the span of original characters it came
from; `NormalizedText.original_span` maps a match back.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
import unicodedata
from importlib import resources

__all__ = [
    "NormalizedText",
    "canonical_id",
    "latin_skeleton_map",
    "normalize",
    "normalized_phrase",
    "release_long_views",
]

# Default-ignorable code points that are not category Cf (DerivedCoreProperties.txt):
# combining grapheme joiner, Hangul fillers, Khmer inherent vowels, variation selectors.
_IGNORABLE_NOT_CF = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
    + "".join(chr(c) for c in range(0xE0100, 0xE01F0))
)

# Runs of text that are their own normalised view, character for character: printable
# ASCII with single spaces. Most drafts are mostly this, so they skip the per-character loop.
_PLAIN_RUN = re.compile(r"[!-~]+(?: [!-~]+)*")

# Conjoining Hangul vowels and trailing consonants compose with the preceding jamo under
# NFKC although their combining class is 0, so they stay in the cluster of their syllable.
_HANGUL_VT = frozenset(chr(c) for c in (*range(0x1161, 0x1176), *range(0x11A8, 0x11C3)))


@functools.cache
def latin_skeleton_map() -> dict[str, str]:
    """Non-ASCII characters Unicode TS #39 maps to a Latin (ASCII letters) skeleton, and it.

    Built once, on first use, from `confusable_homoglyphs`' table of confusables.txt
    (loading it costs about 30 ms, which drafts in plain ASCII never pay). The table
    pairs each source character with its prototype in both directions; a source has
    exactly one entry, its prototype. Two TS #39 prototypes are themselves the skeleton
    of an ASCII letter: "rn" (of "m") and "l" (of "I" and "1"); a single glyph that
    looks like "rn" reads as "m", so it maps to "m".
    """
    raw = resources.files("confusable_homoglyphs").joinpath("confusables.json")
    table: dict[str, list[dict[str, str]]] = json.loads(raw.read_text(encoding="utf-8"))
    mapping: dict[str, str] = {}
    for key, entries in table.items():
        # The table was scraped from the comments of confusables.txt, where right-to-left
        # characters are wrapped in LEFT-TO-RIGHT MARKs for display.
        source = key.strip("\u200e\u200f")
        if len(source) != 1 or source.isascii() or len(entries) != 1:
            continue
        # Digits stay digits (TS #39 reads ARABIC-INDIC DIGIT ONE as "l"), so `\d` keeps
        # its meaning; marks, separators and controls are not look-alike letters.
        category = unicodedata.category(source)
        if category == "Nd" or category[0] in "MZC":
            continue
        target = entries[0]["c"].strip("\u200e\u200f")
        if target.isascii() and target.isalpha():
            mapping[source] = "m" if target == "rn" else target
    return mapping


def _is_ignorable(char: str) -> bool:
    return char in _IGNORABLE_NOT_CF or unicodedata.category(char) == "Cf"


def _continues_cluster(char: str) -> bool:
    return (
        not char.isascii()
        and (unicodedata.category(char)[0] == "M" or char in _HANGUL_VT)
        and not char.isspace()
    )


@functools.lru_cache(maxsize=4096)
def _view_of_cluster(cluster: str, fold: bool) -> str:
    """The normalised view of one starter with its marks (format characters already gone)."""
    skeleton = latin_skeleton_map()
    # The skeleton first, as TS #39 defines it on (canonical, not compatibility)
    # decompositions: NFKC would turn U+02DB OGONEK, listed as a look-alike of "i", into
    # a space and a combining mark. Then NFKC, and the skeleton of what NFKC made.
    text = "".join(skeleton.get(c, c) for c in cluster)
    text = "".join(skeleton.get(c, c) for c in unicodedata.normalize("NFKC", text))
    if fold:
        text = "".join(skeleton.get(c, c) for c in text.casefold()).casefold()
    return text


_SPACES = re.compile(r" {2,}")


_CHUNK = 1 << 16
_WORD_END = re.compile(r"\S(?=\s)")


def _one_space(text: str, chunk: int = _CHUNK) -> str:
    """`text` with every run of white space as one space (str.split runs at C speed).

    A long text is done a chunk at a time, each cut just before a run of white
    space: `str.split` makes one object per word (about ten times the text's
    size for English), so splitting a 10 MB edit whole peaked at over 100 MiB.
    """
    if len(text) <= chunk:
        return _one_space_whole(text)
    views: list[str] = []
    start = 0
    while start < len(text):
        cut = _WORD_END.search(text, start + chunk) if start + chunk < len(text) else None
        end = len(text) if cut is None else cut.end()
        # Each chunk but the last ends in a word and each but the first starts with
        # white space, so no run of white space spans two chunks.
        views.append(_one_space_whole(text[start:end]))
        start = end
    return "".join(views)


def _one_space_whole(text: str) -> str:
    view = " ".join(text.split())
    if text[:1].isspace():
        view = " " + view
    if text[-1:].isspace() and view != " ":
        view += " "
    return view


# Every combining character met so far. A text free of them is its characters' views
# side by side, which str.translate builds at C speed; one with them needs NFKC over
# each starter-and-marks cluster, character by character in Python.
_CONTINUATIONS: set[str] = set()


class _CharacterViews(dict[int, str]):
    """Each character's view on its own, computed on first sight: a str.translate table."""

    def __init__(self, *, fold: bool) -> None:
        super().__init__()
        self.fold = fold

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if _is_ignorable(char):
            view = ""
        elif char.isspace():
            view = " "
        else:
            if _continues_cluster(char):
                _CONTINUATIONS.add(char)
            view = _view_of_cluster(char, self.fold)
        self[code] = view
        return view


_VIEWS = {True: _CharacterViews(fold=True), False: _CharacterViews(fold=False)}
_continuation_search: tuple[int, re.Pattern[str] | None] = (0, None)


def _has_continuation(text: str) -> bool:
    """Whether `text` holds a combining character (all of its characters translated once)."""
    global _continuation_search
    count, pattern = _continuation_search
    if count != len(_CONTINUATIONS):
        # A character class searches at C speed; rebuilt only when a new mark is first seen.
        chars = "".join(sorted(_CONTINUATIONS))
        pattern = re.compile(f"[{re.escape(chars)}]") if chars else None
        count = len(chars)
        _continuation_search = (count, pattern)
    return pattern is not None and pattern.search(text) is not None


def _pieces(original: str, fold: bool) -> tuple[str, list[tuple[int, int, int, bool]]]:
    """The view of `original` and its pieces: (view start, original start, original end, linear).

    In a linear piece view and original advance together; in another, every character
    of the piece came from the whole original span. A space that follows a space in
    the view is dropped, as runs of white space become one space.
    """
    out: list[str] = []
    pieces: list[tuple[int, int, int, bool]] = []
    at = 0  # length of the view so far
    i, n = 0, len(original)
    while i < n:
        plain = _PLAIN_RUN.match(original, i)
        if plain is not None:
            end = plain.end()
            # A mark after the run composes with its last character: leave that one to
            # the cluster path.
            if end < n and _continues_cluster(original[end]):
                end -= 1
            if end > i:
                chunk = original[i:end]
                out.append(chunk.lower() if fold else chunk)
                pieces.append((at, i, end, True))
                at += end - i
                i = end
                continue
        j = i + 1
        while j < n and (_continues_cluster(original[j]) or _is_ignorable(original[j])):
            j += 1
        if _is_ignorable(original[i]):
            view = ""
        elif original[i].isspace():
            view = " "
        else:
            view = _view_of_cluster("".join(c for c in original[i:j] if not _is_ignorable(c)), fold)
        if view.startswith(" ") and out and out[-1].endswith(" "):
            # Extend the space already in the view over this one.
            view_start, start, _, linear = pieces.pop()
            if linear:  # a plain run never ends in a space, so this is a lone space piece
                raise AssertionError("unreachable: plain runs end in a non-space")
            pieces.append((view_start, start, j, False))
            view = view[1:]
        view = _SPACES.sub(" ", view)
        if view:
            out.append(view)
            pieces.append((at, i, j, False))
            at += len(view)
        i = j
    return "".join(out), pieces


class NormalizedText:
    """The normalised view of one text, and where each of its characters came from.

    Immutable once built. `text` is what rules search; `original_span(start, end)`
    gives the span of the original text that a match `[start, end)` of `text` covers.
    Most drafts match no rule, so the map back is only built when first asked for.
    """

    __slots__ = ("_fold", "_pieces", "_starts", "original", "text")

    original: str
    """The text as given."""
    text: str
    """The normalised view."""

    def __init__(self, original: str, *, fold: bool) -> None:
        self.original = original
        self._fold = fold
        self._pieces: tuple[tuple[int, int, int, bool], ...] | None = None
        self._starts: tuple[int, ...] = ()
        if original.isascii():
            self.text = _one_space(original.lower() if fold else original)
            return
        translated = original.translate(_VIEWS[fold])
        if not _has_continuation(original):
            self.text = _one_space(translated)
        else:
            self.text, pieces = _pieces(original, fold)
            self._set_pieces(pieces)

    def _set_pieces(self, pieces: list[tuple[int, int, int, bool]]) -> None:
        self._pieces = tuple(pieces)
        self._starts = tuple(p[0] for p in pieces)

    def _locate(self, index: int) -> tuple[int, int]:
        """The original span of the view's character at `index`."""
        if self._pieces is None:
            text, pieces = _pieces(self.original, self._fold)
            if text != self.text:  # pragma: no cover - the two paths are tested to agree
                raise AssertionError(f"normalised views disagree: {text!r} != {self.text!r}")
            self._set_pieces(pieces)
        assert self._pieces is not None
        view_start, start, end, linear = self._pieces[bisect.bisect_right(self._starts, index) - 1]
        if linear:
            return start + index - view_start, start + index - view_start + 1
        return start, end

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original span covered by the view's non-empty span `[start, end)`."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"span [{start}, {end}) is not a non-empty span of the view")
        return self._locate(start)[0], self._locate(end - 1)[1]

    def __repr__(self) -> str:
        return f"NormalizedText({self.original!r} -> {self.text!r})"


def normalize(text: str, *, fold: bool = True) -> NormalizedText:
    """The normalised view of `text`, case-folded when `fold`.

    Cached: the compliance node runs every rule on the same draft, one after another,
    so the view is built once per draft, not once per rule. Long texts have a cache
    of their own that keeps only the latest, so a burst of large edits does not
    stay resident (256 views of 10 MB texts would hold gigabytes).
    """
    if len(text) > _LONG:
        return _normalize_long(text, fold)
    return _normalize_short(text, fold)


_LONG = 1 << 16


@functools.lru_cache(maxsize=256)
def _normalize_short(text: str, fold: bool) -> NormalizedText:
    return NormalizedText(text, fold=fold)


@functools.lru_cache(maxsize=2)  # both views (folded or not) of the latest long text
def _normalize_long(text: str, fold: bool) -> NormalizedText:
    return NormalizedText(text, fold=fold)


def release_long_views() -> None:
    """Drop the cached views of long texts (the rule runner calls it once all rules ran).

    Each is as large as its text; kept, they would stay resident through the
    rest of the call (the claim, the audit rows, the checkpoint) for nothing.
    """
    _normalize_long.cache_clear()


def normalized_phrase(phrase: str) -> str:
    """A keyword phrase in the case-folded normalised view, as drafts are matched."""
    return normalize(phrase, fold=True).text.strip(" ")


# The ASCII look-alikes TS #39 folds together, once case is folded: "1", "|" and "I"
# (so "i", once case is folded) read as "l", "0" as "o", "rn" as "m". Rule text keeps
# these apart (a pattern over digits must still work); reviewer ids merge them, as
# counting one person twice is the failure to avoid, and merging two real people only
# asks for one more approver.
_ID_LOOK_ALIKES = str.maketrans({"i": "l", "1": "l", "|": "l", "0": "o"})


def canonical_id(identity: str) -> str:
    """The canonical form of a reviewer or requester id: one string per person.

    The rules' case-folded view (format characters removed, NFKC, TS #39 Latin
    skeleton, case-folded), then with all white space removed and the ASCII
    look-alikes merged as TS #39 reads them ("i", "1" and "|" as "l"; "0" as "o";
    "rn" as "m"). Empty when the id has no visible character.
    """
    view = normalize(identity, fold=True).text
    return "".join(view.split()).translate(_ID_LOOK_ALIKES).replace("rn", "m")
