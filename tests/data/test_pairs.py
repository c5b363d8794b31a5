"""Language pairs made offline: dates written in many locales and formats with their ISO form,
numbers in English words and in another language's; seeded; and their scores (BLEU, chrF, exact
match) as sacreBLEU computes them."""

from __future__ import annotations

import datetime

import pytest

from layerforge.data.pairs import FORMATS, LOCALES, STYLES, dates, numbers
from layerforge.errors import DataError
from layerforge.metrics import sequence_scores


def test_dates_are_real_writings_of_their_iso_date_in_every_style():
    from babel.dates import format_date

    table = dates(3000, seed=1)
    assert list(table.columns) == ["source", "target", "style"]
    assert table.equals(dates(3000, seed=1)) and not table.equals(dates(3000, seed=2))
    assert table["style"].nunique() == len(STYLES) == len(LOCALES) * len(FORMATS) - 1  # all but American short dates
    for row in table.sample(200, random_state=0).itertuples():
        locale, form = row.style.split("/", 1)
        date = datetime.date.fromisoformat(row.target)
        assert format_date(date, format=form, locale=locale) == row.source
        assert datetime.date(1950, 1, 1) <= date <= datetime.date(2049, 12, 31)
    french = table[table["style"] == "fr_FR/long"].iloc[0]
    assert any(month in french.source for month in ("janvier", "février", "mars", "avril", "mai", "juin", "juillet",
                                                    "août", "septembre", "octobre", "novembre", "décembre"))


def test_numbers_in_words_cover_every_count_of_digits():
    table = numbers(2000, seed=0, language="de")
    assert table.equals(numbers(2000, seed=0, language="de"))
    counts = table["number"].astype(str).str.len().value_counts()
    assert set(counts.index) == {1, 2, 3, 4, 5, 6} and counts.min() > 250
    row = table[table["number"] == table["number"].max()].iloc[0]
    assert row.source.startswith(("nine hundred", "eight hundred", "seven hundred")) or row.number < 700_000
    assert numbers(1, seed=3, language="fr").iloc[0].target != numbers(1, seed=3, language="de").iloc[0].target
    with pytest.raises(DataError, match="language 'xx' is not one of fr, de"):
        numbers(1, language="xx")


def test_sequence_scores_are_sacrebleus_and_exact_match_counts_rows():
    import sacrebleu

    hypotheses = ["trois cent douze", "deux mille", "cent un"]
    references = ["trois cent douze", "deux mille un", "cent un"]
    found = sequence_scores(hypotheses, references)
    assert found["exact_match"] == pytest.approx(2 / 3)
    assert found["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    assert found["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score)
    long = ["neuf cent quatre-vingt-dix-neuf mille neuf cent quatre-vingt-dix-neuf", "sept cent mille trois cent deux"]
    assert sequence_scores(long, long)["bleu"] == pytest.approx(100.0)  # (BLEU needs four-word rows to count)
    with pytest.raises(ValueError, match="2 decoded sequences for 3 references"):
        sequence_scores(hypotheses[:2], references)
