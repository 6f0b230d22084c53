"""The peer of bench/serving: an ONNX model behind FastAPI, written the way its users write it
(pydantic request model, one onnxruntime session per worker, intra_op_num_threads=1 so two
workers do not oversubscribe two cores). The model path comes from $MODEL_PATH.

    MODEL_PATH=model.onnx uvicorn fastapi_app:app --workers 2   (uvicorn[standard])
"""
import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(os.environ["MODEL_PATH"], options, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
output_names = [o.name for o in session.get_outputs()]

app = FastAPI()


class PredictRequest(BaseModel):
    features: list[list[float]]


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/predict")
def predict(request: PredictRequest):
    x = np.asarray(request.features, dtype=np.float32)
    outputs = session.run(None, {input_name: x})
    answer = {}
    for name, value in zip(output_names, outputs):
        if isinstance(value, list):  # ZipMap: list of {label: probability}
            value = [list(row.values()) for row in value]
        answer[name] = np.asarray(value).tolist()
    return answer
