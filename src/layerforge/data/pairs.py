"""Sequence-to-sequence pairs with real language in them, made offline from packages:

- ``dates``: a date written as people write it, in one of many formats and locales (Babel's CLDR
  patterns: "7 mars 2021", "Sonntag, 7. März 2021", "07.03.21"), and the same date in ISO form
  ("2021-03-07"). Each row names its ``style`` (locale and format), so that splits grouped by it
  (``data.groups: style``) hold out formats and locales never seen in training.
- ``numbers``: a number written in English words ("three hundred and twelve") and the same number
  in another language's words (``num2words``: French "trois cent douze", German
  "dreihundertzwölf").

Rows come from a seeded generator: the same arguments give the same table.
"""

from __future__ import annotations

import datetime

import numpy as np

from ..errors import DataError

LOCALES = ("en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "it_IT", "pt_BR", "nl_NL", "sv_SE", "pl_PL", "da_DK",
           "fi_FI")
FORMATS = ("short", "medium", "long", "full", "d MMMM y", "EEEE d MMM y", "dd.MM.y", "MMM d y")
LANGUAGES = ("fr", "de", "es", "it", "nl", "pt")
FIRST_DAY, DAYS = datetime.date(1950, 1, 1), 100 * 365 + 25  # 1950 to 2049
# American short dates ("3/7/21": 7 March) read as Spanish ones do (the 3rd of July): left out, so
# that every written date has one answer
AMBIGUOUS = {("en_US", "short")}
STYLES = tuple((locale, form) for locale in LOCALES for form in FORMATS if (locale, form) not in AMBIGUOUS)


def dates(rows: int = 20_000, seed: int = 0):
    """A DataFrame of ``rows`` dates: ``source`` (written in a locale's format), ``target`` (ISO
    8601), ``style`` (``locale/format``, for grouped splits)."""
    import pandas as pd

    try:
        from babel.dates import format_date
    except ImportError:
        raise DataError("dates need the 'babel' package: pip install 'layerforge[language]'") from None
    rng = np.random.default_rng(seed)
    days = rng.integers(0, DAYS, rows)
    drawn = rng.integers(0, len(STYLES), rows)
    sources, targets, styles = [], [], []
    for day, style in zip(days.tolist(), drawn.tolist()):
        date, (locale, form) = FIRST_DAY + datetime.timedelta(days=day), STYLES[style]
        sources.append(format_date(date, format=form, locale=locale))
        targets.append(date.isoformat())
        styles.append(f"{locale}/{form}")
    return pd.DataFrame({"source": sources, "target": targets, "style": styles})


def held_out_styles() -> list[str]:
    """The 12 pairs of locale and format the ``dates`` set tests on: one format per locale, each
    format held out in one or two locales, so that training sees every locale and every format,
    never these pairs of them. Each held-out pair orders its date as some pair in training does
    (a short form written year first, as only Swedish does, would be a guess)."""
    return [f"{locale}/{FORMATS[(3 * i + 1) % len(FORMATS)]}" for i, locale in enumerate(LOCALES)]


def numbers(rows: int = 20_000, seed: int = 0, language: str = "fr", largest: int = 999_999):
    """A DataFrame of ``rows`` numbers: ``source`` (English words), ``target`` (the words of
    ``language``), ``number``. Numbers are drawn evenly over their count of digits (as many
    below 10 as in the hundred thousands)."""
    import pandas as pd

    if language not in LANGUAGES:
        raise DataError(f"numbers: language {language!r} is not one of {', '.join(LANGUAGES)}")
    try:
        from num2words import num2words as words
    except ImportError:
        raise DataError("numbers need the 'num2words' package: pip install 'layerforge[language]'") from None
    rng = np.random.default_rng(seed)
    digits = rng.integers(1, len(str(largest)) + 1, rows)
    low = np.where(digits == 1, 0, 10 ** (digits - 1))
    high = np.minimum(10 ** digits - 1, largest)
    values = (low + rng.random(rows) * (high - low + 1)).astype(np.int64)
    return pd.DataFrame({"source": [words(int(v), lang="en") for v in values],
                         "target": [words(int(v), lang=language) for v in values], "number": values})
