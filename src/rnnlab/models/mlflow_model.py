"""A saved rnnlab model as an MLflow model (pyfunc flavour), logged by rnnlab.tracking.log_model.

MLflow's "models from code": this file is copied into every logged model and runs when
the model loads, so loading needs the rnnlab package installed, and nothing is pickled.
One flavour for both implementations (Keras and the NumPy models), through rnnlab.models.

    model = mlflow.pyfunc.load_model("runs:/<run id>/model")
    model.predict(x)   # what rnnlab.models.load(...).predict(x) gives
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np


class RecurrentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from rnnlab import models

        # The artifact is the saved model file; rnnlab.models.load reads its folder.
        self.model = models.load(Path(context.artifacts["model"]).parent, context.model_config["task"])

    # No type hints: MLflow reads them as an input schema of its own, which a tensor is not.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        x = np.asarray(model_input)
        return self.model.predict(x, batch_size=len(x))


mlflow.models.set_model(RecurrentModel())
