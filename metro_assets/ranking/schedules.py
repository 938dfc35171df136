"""The weekly retrain schedule."""

from datetime import timedelta

from dagster import RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from metro_assets.settings import Settings


def retrain_day(tick_day, settings: Settings):
    """The partition a tick retrains: the tick's day, or the run date after the history when the
    simulated or imported history lies in the past (the demo's dates are not the wall clock's)."""
    return min(tick_day, settings.history_end)


def build_weekly_retrain(settings: Settings):
    @schedule(
        name="weekly_retrain",
        cron_schedule=settings.ops.retrain_cron,  # METRO_RETRAIN_CRON, default Mondays 04:00 before the day's pipeline
        job_name="retrain",
        execution_timezone="UTC",
        description=f"Retrain the ranker ({settings.ops.retrain_cron} UTC; default Mondays), then rescore that day.",
    )
    def weekly_retrain(context: ScheduleEvaluationContext):
        day = retrain_day(context.scheduled_execution_time.date(), settings)
        if day < settings.start_date + timedelta(weeks=2):
            return SkipReason(f"{day} has less than two weeks of history to train on")
        return RunRequest(run_key=f"weekly-retrain-{day}", partition_key=day.isoformat(),
                          tags={"metro/trigger": "weekly_retrain schedule"})

    return weekly_retrain
