"""Prediction: plain inputs to tokenized features (each task's own tokenizing), length-sorted
batches, backbone passes shared among the tasks that read the same tokens, decoded answers.

The modules here know a model only as a `Predictor`, so that `MultiTaskModel.predict` can call
them without the two importing each other.
"""

from mtlm.inference.inputs import as_rows, input_signature
from mtlm.inference.passes import predict_features
from mtlm.inference.predict import predict_inputs
from mtlm.inference.predictor import Predictor

__all__ = ["Predictor", "as_rows", "input_signature", "predict_features", "predict_inputs"]
