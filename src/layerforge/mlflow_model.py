"""The MLflow pyfunc model of a layerforge run, logged from this file (MLflow's models from code,
so nothing is pickled): its artifact ``run`` is the run directory, and ``predict(frame)`` answers
with the table ``layerforge predict`` writes (``Predictor.predict_table``).

    >>> model = mlflow.pyfunc.load_model("runs:/<id>/model")   # doctest: +SKIP
    >>> model.predict(frame)                                     # doctest: +SKIP
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class LayerforgeModel(PythonModel):
    def load_context(self, context) -> None:
        from layerforge.run.directory import Run

        self.run = Run(context.artifacts["run"])

    # a DataFrame hint: MLflow infers no schema from it, so the rows reach layerforge's own checks
    # as they are (the same errors, in the same words, as layerforge predict)
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """``model_input``: a DataFrame of raw rows (the run's columns); ``params`` may name
        ``unknown_categories`` ('error' or 'bucket') as ``layerforge predict`` does."""
        options = {"unknown": (params or {}).get("unknown_categories")}
        return self.run.predictor.predict_table(model_input, **options)


mlflow.models.set_model(LayerforgeModel())
