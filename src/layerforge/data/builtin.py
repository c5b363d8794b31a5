"""Built-in datasets that ship inside packages, usable offline."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataError, unknown_name


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    task: str
    target: str
    source: str
    description: str


DATASETS: dict[str, BuiltinDataset] = {
    "digits": BuiltinDataset(
        "digits", "classification", "label", "scikit-learn load_digits",
        "8x8 handwritten digit images as 64 pixel intensities (0-16), 10 classes",
    ),
    "iris": BuiltinDataset(
        "iris", "classification", "species", "scikit-learn load_iris",
        "sepal and petal measurements of three iris species",
    ),
    "wine": BuiltinDataset(
        "wine", "classification", "cultivar", "scikit-learn load_wine",
        "chemical analysis of wines from three cultivars",
    ),
    "breast_cancer": BuiltinDataset(
        "breast_cancer", "classification", "diagnosis", "scikit-learn load_breast_cancer",
        "cell nucleus features of breast masses, malignant or benign",
    ),
    "diabetes": BuiltinDataset(
        "diabetes", "regression", "progression", "scikit-learn load_diabetes",
        "baseline measurements and disease progression one year later",
    ),
}


def load(name: str):
    """Return the built-in dataset ``name`` as a pandas DataFrame with its target column.

    Raises:
        DataError: ``name`` is not a built-in dataset.
    """
    if name not in DATASETS:
        raise DataError(unknown_name("dataset", name, DATASETS))
    import pandas as pd
    from sklearn import datasets as sk

    info = DATASETS[name]
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
