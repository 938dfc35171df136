"""The drift sensor, with Dagster's sensor test utilities: it fires after an alerting report only."""

from dagster import AssetMaterialization, DagsterInstance, MetadataValue, SensorResult, build_sensor_context

from metro_assets.monitoring.sensors import TAG_REASON, drift_retrain


def report(instance, day, alert, reason="no alert"):
    instance.report_runless_asset_event(AssetMaterialization(
        asset_key="drift_report", partition=day,
        metadata={"alert": alert, "alert_days": MetadataValue.json([day] if alert else []), "reason": reason}))


def evaluate(instance, cursor=None) -> SensorResult:
    return drift_retrain(build_sensor_context(instance=instance, cursor=cursor))


def test_silent_on_a_calm_report():
    with DagsterInstance.ephemeral() as instance:
        report(instance, "2025-09-25", alert=False)
        result = evaluate(instance)
        assert not result.run_requests and "no alerting drift_report" in str(result.skip_reason)


def test_fires_once_after_an_alerting_report_with_the_reason_in_the_tags():
    with DagsterInstance.ephemeral() as instance:
        report(instance, "2025-09-25", alert=False)
        report(instance, "2025-09-30", alert=True, reason="score PSI 0.410 over 0.25")
        result = evaluate(instance)
        [request] = result.run_requests
        assert request.partition_key == "2025-09-30" and request.run_key == "drift-retrain-2025-09-30"
        assert request.tags[TAG_REASON] == "score PSI 0.410 over 0.25"
        # the cursor moves past it: the next tick sees nothing new
        again = evaluate(instance, cursor=result.cursor)
        assert not again.run_requests
        # a re-materialized alerting report asks again with the same run key (Dagster runs it once)
        report(instance, "2025-09-30", alert=True, reason="score PSI 0.410 over 0.25")
        [repeat] = evaluate(instance, cursor=result.cursor).run_requests
        assert repeat.run_key == request.run_key


def test_a_backfill_between_two_ticks_is_read_whole():
    with DagsterInstance.ephemeral() as instance:
        for day, alert in [("2025-09-28", True), ("2025-09-29", False), ("2025-09-30", True)]:
            report(instance, day, alert)
        assert [r.partition_key for r in evaluate(instance).run_requests] == ["2025-09-28", "2025-09-30"]
