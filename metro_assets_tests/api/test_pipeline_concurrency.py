"""The API keeps answering, consistently, while daily_pipeline rewrites the warehouse and republishes."""

import threading
import time
from datetime import timedelta

import polars as pl
from dagster import DagsterInstance

from metro_assets.definitions import build_defs
from metro_assets.settings import load_settings
from metro_assets_tests.api.hammer import Hammer
from metro_assets_tests.conftest import HISTORY_END

RUN_DAY = HISTORY_END


def _run(job, day):
    return build_defs(load_settings()).get_job_def(job).execute_in_process(
        partition_key=day.isoformat(), instance=DagsterInstance.ephemeral(), raise_on_error=False)


def _ranked_offers(body: dict) -> list[int]:
    return [r["offer_id"] for r in sorted(body["recommendations"], key=lambda r: r["rank"])]


def test_answers_stay_whole_while_the_pipeline_publishes(tiny_warehouse, tiny_env, serve_api):
    assert _run("retrain", RUN_DAY - timedelta(days=4)).success
    before = pl.read_parquet(tiny_env.serving)
    api = serve_api(tiny_env.serving)
    ids = before["customer_id"].unique().sort().to_list()

    def ranks_are_whole(body):
        ranks = [r["rank"] for r in body["recommendations"]]
        return None if ranks == list(range(1, len(ranks) + 1)) else f"ranks {ranks}"

    pipeline: dict = {}
    worker = threading.Thread(target=lambda: pipeline.update(result=_run("daily_pipeline", RUN_DAY)))
    with Hammer(api.url, ids, ranks_are_whole, threads=3) as hammer:
        worker.start()
        worker.join(timeout=300)
        deadline = time.monotonic() + 30  # until the server serves the new run date
        with api.client() as client:
            while client.get("/health").json().get("newest_run_date") != RUN_DAY.isoformat():
                assert time.monotonic() < deadline, "the new snapshot was never picked up"
                time.sleep(0.1)
        time.sleep(0.5)  # some requests against the new snapshot too
    assert pipeline["result"].success

    after = pl.read_parquet(tiny_env.serving)
    expected = {
        (str(key[0]), key[1]): group.sort("rank")["offer_id"].to_list()
        for key, group in after.group_by("run_date", "customer_id")
    }
    newest = set(after.filter(pl.col("run_date") == RUN_DAY)["customer_id"])
    # a 404 is right only for a customer the new day does not serve
    unexpected = [e for e in hammer.errors if not ("404" in e and int(e.split()[1]) not in newest)]
    assert unexpected == []
    served_days = {b["run_date"] for b in hammer.bodies}
    assert served_days == {str(RUN_DAY - timedelta(days=4)), str(RUN_DAY)}
    for body in hammer.bodies:  # every answer is exactly one snapshot's list, never a mix
        assert _ranked_offers(body) == expected[(body["run_date"], body["customer_id"])]
