"""Unit tests of `hitl_compliance._normalize`: the view rules match on and its map back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitl_compliance._normalize import (
    NormalizedText,
    _one_space,
    _one_space_whole,
    latin_skeleton_map,
    normalize,
    normalized_phrase,
    release_long_views,
)


class TestView:
    @pytest.mark.parametrize(
        ("text", "view"),
        [
            ("Plain text.", "plain text."),
            ("a\u200bb\u200cc\u200dd\u2060e", "abcde"),
            ("soft\u00adhyphen", "softhyphen"),
            ("\ufeffbom", "bom"),
            ("\u202ertl\u202c \u2066iso\u2069 \u200emark\u200f", "rtl iso mark"),
            ("a\u00a0b\u2009c\u3000d\u205fe", "a b c d e"),
            ("a \t\r\n\u2028\u2029 b", "a b"),
            ("\uff21\uff22\uff23", "abc"),
            ("\U0001d400\U0001d41b", "ab"),
            ("\ufb01nance", "finance"),
            ("\u0430\u0435\u043e\u0440\u0441\u0443", "aeopcy"),  # Cyrillic а е о р с у
            ("\u0391\u0392\u039f\u03bf", "abo" + "o"),  # Greek Α Β Ο ο
            ("Stra\u00dfe", "strasse"),
            ("cafe\u0301", "caf\u00e9"),  # NFKC composes the mark onto its letter
        ],
    )
    def test_folded_view(self, text: str, view: str) -> None:
        """The folded view drops format characters, unifies spaces, applies NFKC and folds."""
        assert normalize(text).text == view

    def test_unfolded_view_keeps_case(self) -> None:
        """Without folding, letters keep their case and look-alikes map to the same case."""
        assert normalize("A\u0410\u0430 b\u200b", fold=False).text == "AAa b"

    def test_ascii_is_not_skeletoned(self) -> None:
        """ASCII letters and digits are kept as they are: I, l, 1, 0, O and m stay apart."""
        assert normalize("Il10Om", fold=False).text == "Il10Om"

    def test_digits_are_not_mapped_to_letters(self) -> None:
        """Non-Latin digits are left to NFKC, never mapped to look-alike letters."""
        assert "\u0661" not in latin_skeleton_map()  # ARABIC-INDIC DIGIT ONE, TS #39 "l"
        assert normalize("\u0661").text == "\u0661"

    def test_skeleton_map_is_letters_to_ascii(self) -> None:
        """Every entry maps one non-ASCII character to an ASCII letter string."""
        mapping = latin_skeleton_map()
        assert len(mapping) > 1000
        assert all(not k.isascii() and len(k) == 1 for k in mapping)
        assert all(v.isascii() and v.isalpha() for v in mapping.values())
        assert mapping["\u0430"] == "a"
        assert mapping["\U00011700"] == "m"  # AHOM LETTER KA, TS #39 prototype "rn"

    def test_phrase_view_is_stripped(self) -> None:
        """A phrase's view has no leading or trailing space."""
        assert normalized_phrase("\u00a0 Act\u200b NOW \n") == "act now"

    def test_cached(self) -> None:
        """The same text gives the same view object, so several rules share one build."""
        assert normalize("some draft") is normalize("some draft")


class TestOriginalSpan:
    def test_linear_text(self) -> None:
        """In plain text a view span is the same original span."""
        view = normalize("Hello World")
        assert view.original_span(6, 11) == (6, 11)

    def test_span_over_removed_and_collapsed_characters(self) -> None:
        """A span covers the invisible characters and space runs inside it, not those around it."""
        text = "\u200bgu\u200ba  \n b\u200b"
        view = normalize(text)
        assert view.text == "gua b"
        start, end = view.original_span(0, len(view.text))
        assert text[start:end] == "gu\u200ba  \n b"

    def test_span_of_expanding_character(self) -> None:
        """A character whose view is longer (a ligature) maps back to itself whole."""
        text = "x \ufb01ne"
        view = normalize(text)
        assert view.text == "x fine"
        assert view.original_span(2, 3) == (2, 3)
        assert view.original_span(3, 4) == (2, 3)  # the "i" of the ligature
        assert view.original_span(3, 6) == (2, 5)

    def test_span_with_marks(self) -> None:
        """A composed letter maps back to the base letter and its mark."""
        text = "cafe\u0301!"
        view = normalize(text)
        assert view.original_span(3, 4) == (3, 5)
        assert text[slice(*view.original_span(0, 5))] == text

    @pytest.mark.parametrize(("start", "end"), [(0, 0), (2, 1), (-1, 2), (0, 99)])
    def test_refuses_empty_or_outside_span(self, start: int, end: int) -> None:
        """A span that is empty or outside the view raises ValueError."""
        view = normalize("abc")
        with pytest.raises(ValueError, match="not a non-empty span"):
            view.original_span(start, end)
        assert view.text == "abc"


_TRICKY = st.sampled_from(
    [
        *"a Z.\u200b\u00ad\ufeff\u202e\u00a0\u3000\n\t\u0301\u0327\u0430\u0391\uff41\ufb01\u00df",
        "\u1100\u1161\u11a8",
        "\u00a8",
        "\ufdfa",
        "\u0130",
        "\U0001d41a",
    ]
)


class TestMapAgreesWithView:
    @given(
        text=st.one_of(
            st.lists(_TRICKY, max_size=30).map("".join),
            st.text(st.characters(codec="utf-8"), max_size=40),
        ),
        fold=st.booleans(),
    )
    def test_every_view_character_maps_inside_the_original(self, text: str, fold: bool) -> None:
        """Each view character maps to an in-order original span, however the view was built."""
        view = NormalizedText(text, fold=fold)
        previous = 0
        for index in range(len(view.text)):
            start, end = view.original_span(index, index + 1)
            assert 0 <= start < end <= len(text)
            assert start >= previous or start == view.original_span(max(index - 1, 0), index)[0]
            previous = start
        if view.text:
            whole = view.original_span(0, len(view.text))
            assert NormalizedText(text[whole[0] : whole[1]], fold=fold).text.strip(" ") == (
                view.text.strip(" ")
            )


_SPACES_AND_LETTERS = st.text(
    alphabet=st.sampled_from(["a", "b", " ", "\n", "\t", "\u00a0", "\u2003", "\u3000", "\x1c"]),
    max_size=60,
)


class TestLongTexts:
    @given(_SPACES_AND_LETTERS, st.integers(min_value=1, max_value=7))
    def test_chunked_white_space_folding_equals_the_whole(self, text: str, chunk: int) -> None:
        """Folding white space a chunk at a time gives exactly the view of the whole text."""
        assert _one_space(text, chunk) == _one_space_whole(text)

    def test_a_long_text_gets_the_same_view(self) -> None:
        """A text past the chunk size normalises as the same text built from short pieces."""
        piece = "Capital  at\n\nrisk.\u00a0Guaranteed RETURNS "
        long_text = piece * 5_000
        assert normalize(long_text).text == normalize(piece).text * 5_000

    def test_long_views_are_released(self) -> None:
        """The rule runner's release drops long views; short ones stay cached."""
        long_text, short = "x " * 70_000, "short text"
        first, kept = normalize(long_text), normalize(short)
        assert normalize(long_text) is first
        release_long_views()
        assert normalize(long_text) is not first
        assert normalize(short) is kept
