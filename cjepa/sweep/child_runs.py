"""The MLflow child runs of a study, by trial: what the results table links each row to."""

from __future__ import annotations

from cjepa.sweep.plan import Tracking
from cjepa.sweep.study import Study


def child_run_ids(tracking: Tracking | None, study: Study, page: int = 1000) -> dict[tuple[str, str], str]:
    """(arm, seed) -> MLflow run id of the study's child runs, over every page of the search.

    Why pages: one ``search_runs`` call returns at most ``max_results`` runs, and a long search (or a
    study extended many times) can hold more; a row beyond the first page would lose its run id."""
    if not tracking:
        return {}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.uri)
    exp = client.get_experiment_by_name(study.name)
    if exp is None:
        return {}
    ids: dict[tuple[str, str], str] = {}
    token = None
    while True:
        runs = client.search_runs([exp.experiment_id], f"tags.study = '{study.name}'", max_results=page,
                                  page_token=token)
        ids.update({(r.data.tags["arm"], r.data.tags["seed"]): r.info.run_id for r in runs
                    if "arm" in r.data.tags and "seed" in r.data.tags})
        if not (token := runs.token):
            return ids
