"""mlflow "model from code": the pyfunc is defined by this file, not pickled, so loading a logged
model unpickles nothing; the detector itself travels as a skops file among the artifacts."""

import mlflow

from train.tracking import DetectorPyfunc

mlflow.models.set_model(DetectorPyfunc())
