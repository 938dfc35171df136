"""The drift sensor: a `drift_report` materialization that alerts requests the `retrain` job for its day.

The sensor reads only Dagster's event log (the report's metadata), never the
warehouse: a process holding even a read-only DuckDB connection would block
the runs that write it. Its cursor is the last materialization it has seen,
so every report is looked at once, even when a backfill writes several
between two ticks; the run key ``drift-retrain-<day>`` makes a day's retrain
fire once, however often its report is re-materialized.
"""

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

DRIFT_REPORT = AssetKey("drift_report")
TAG_TRIGGER = "metro/trigger"
TAG_REASON = "metro/drift_reason"
MAX_TAG = 250  # tag values are shown in the UI's run list: keep them short


def _value(metadata: dict, key: str, default=None):
    entry = metadata.get(key)
    return default if entry is None else getattr(entry, "value", entry)


def retrain_requests(records) -> list[RunRequest]:
    """A retrain request for each alerting report among ``records`` (event log records of drift_report)."""
    requests = []
    for record in records:
        materialization = record.asset_materialization
        if materialization is None or materialization.partition is None:
            continue
        metadata = materialization.metadata
        day = materialization.partition
        alert_days = _value(metadata, "alert_days")
        alerting = day in alert_days if isinstance(alert_days, list) else bool(_value(metadata, "alert", False))
        if not alerting:
            continue
        reason = str(_value(metadata, "reason", "drift alert"))
        requests.append(
            RunRequest(
                run_key=f"drift-retrain-{day}",
                partition_key=day,
                tags={TAG_TRIGGER: "drift_retrain sensor", TAG_REASON: reason[:MAX_TAG],
                      "metro/drift_report_run": record.run_id},
            )
        )
    return requests


@sensor(
    name="drift_retrain",
    job_name="retrain",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Requests the retrain job for a day when its drift_report alerts (once per day).",
)
def drift_retrain(context: SensorEvaluationContext):
    result = context.instance.fetch_materializations(DRIFT_REPORT, limit=100, cursor=context.cursor, ascending=True)
    requests = retrain_requests(result.records)
    cursor = result.cursor if result.records else context.cursor
    if not requests:
        seen = len(result.records)
        return SensorResult(skip_reason=f"no alerting drift_report among {seen} new materialization(s)",
                            cursor=cursor)
    for request in requests:
        context.log.info(f"retrain {request.partition_key}: {request.tags[TAG_REASON]}")
    return SensorResult(run_requests=requests, cursor=cursor)
