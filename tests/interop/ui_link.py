"""The real MLflow client logs a run to Cairn; the "View run ... at: URL" line it prints is what
crates/cairn/tests/ui.rs then opens in a browser. Prints the run's ids as JSON."""
import json

import mlflow

mlflow.set_experiment("ui-link")
with mlflow.start_run(run_name="linked-by-mlflow") as run:
    mlflow.log_param("source", "mlflow client")
    mlflow.log_metric("score", 0.75)
print(json.dumps({"ok": True, "run_id": run.info.run_id, "experiment_id": run.info.experiment_id}))
