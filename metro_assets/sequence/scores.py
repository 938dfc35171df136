"""A stored SASRec's next-purchase probability for (customer, offer, day) requests, point in time.

For a request of day d the model reads the customer's newest ``max_len``
purchases dated before d (never d itself) and gives log P(the next product
bought is the offer's product), a softmax over every product it knows. Requests
of one customer that share the same last purchase day share one forward pass.
Products the model never saw, and customers without a purchase before d, get null.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from metro_assets.sequence.history import encode, positions, purchase_events, windows_ending


def next_purchase_log_prob(con: duckdb.DuckDBPyConnection, requests: pl.DataFrame, trained,
                           device: str = "cpu") -> pl.DataFrame:
    """``requests`` (customer_id, offer_id, day) with ``next_purchase_log_prob``.

    ``trained`` is a :class:`metro_assets.sequence.sasrec.TrainedSequenceModel`
    (see ``sasrec.from_blobs``).
    """
    from metro_assets.sequence.sasrec import log_probabilities  # torch: only once a model exists

    L = trained.config.max_len
    req = requests.select("customer_id", "offer_id", "day").unique()
    con.register("sequence_requests", req.select("customer_id").unique().to_arrow())
    try:
        events = encode(purchase_events(con, max(req["day"]), customers="sequence_requests"), trained.vocab)
        products = con.sql("SELECT offer_id, product_id FROM offers").pl().unique("offer_id")
    finally:
        con.unregister("sequence_requests")
    events = positions(events)
    starts = events.group_by("customer_id").agg(first=pl.col("first").first())
    # each request's state: the position after the customer's newest event dated before its day
    ends = events.group_by("customer_id", "day").agg(end=pl.col("pos").max() + 1).sort("customer_id", "day")
    asked = req.with_columns(before=pl.col("day") - pl.duration(days=1)).sort("customer_id", "before")
    asked = asked.join_asof(ends.rename({"day": "event_day"}), left_on="before", right_on="event_day",
                            by="customer_id", strategy="backward",
                            check_sortedness=False).join(starts, on="customer_id", how="left")
    codes = pl.DataFrame({"product_id": trained.vocab, "item": np.arange(1, len(trained.vocab) + 1)})
    asked = (asked.join(products, on="offer_id", how="left").join(codes, on="product_id", how="left"))
    known = asked.filter(pl.col("end").is_not_null() & pl.col("item").is_not_null())
    states = known.select("customer_id", "end", "first").unique().sort("customer_id", "end")
    sequences, prior = windows_ending(events["item"].to_numpy(), states["first"].to_numpy(),
                                      states["end"].to_numpy(), L, len(trained.vocab))
    known = known.join(states.with_columns(row=pl.int_range(pl.len())), on=["customer_id", "end", "first"]) \
        .sort("row")
    logp = log_probabilities(trained.model, sequences, prior, known["row"].to_numpy(),
                             known["item"].to_numpy(), device)
    scored = known.select("customer_id", "offer_id", "day").with_columns(next_purchase_log_prob=logp)
    return req.join(scored, on=["customer_id", "offer_id", "day"], how="left")
