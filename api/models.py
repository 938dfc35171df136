"""Pydantic v2 models of the API's responses (they document the OpenAPI schema).

The hot endpoints send JSON text built by :mod:`api.store` instead of
serialising these models per request; the tests validate every response body
against them, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OfferRecommendation(BaseModel):
    """One recommended offer."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(..., ge=1, description="1 = the best offer for this customer")
    offer_id: int
    product_id: int
    product_name: str
    discount_type: str | None = Field(..., description="percentage, fixed_amount or bogo; null when unknown")
    discount_value: float | None = Field(..., description="percent off, money off, or free items per item "
                                                          "bought; null when unknown")
    expiry_date: date = Field(..., description="Last day the offer is valid (the offer's end_date)")
    strategy: str = Field(..., description="Candidate strategy that proposed the offer")
    score: float = Field(..., ge=0, le=1, description="Model's predicted redemption probability")
    reasons: list[str] = Field(
        ...,
        description="Why this offer, as 1 to 3 plain phrases, strongest first (e.g. \"you buy Dairy on most "
                    "shopping trips\", \"30% off\"): the model's strongest positive contributions for this "
                    "customer and offer, else why the candidate strategy proposed it. Empty only in a snapshot "
                    "published before reasons existed.",
        examples=[["you buy Dairy on most shopping trips", "30% off"]],
    )


class RecommendationResponse(BaseModel):
    """A customer's ranked offers for one run date."""

    model_config = ConfigDict(extra="forbid")

    customer_id: int
    run_date: date
    model_version: str
    recommendations: list[OfferRecommendation]


class BatchResponse(BaseModel):
    """Offers for many customers on one run date."""

    model_config = ConfigDict(extra="forbid")

    run_date: date
    model_version: str
    customers: list[RecommendationResponse] = Field(..., description="Customers with recommendations, in request order")
    missing_customer_ids: list[int] = Field(..., description="Requested customers without recommendations that day")


class Health(BaseModel):
    """The snapshot being served."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "degraded"] = Field(
        ..., description="degraded: still serving, but the last reload failed or the snapshot lags the pipeline"
    )
    reasons: list[str] = Field(..., description="Why the status is degraded (empty when ok)")
    run_dates: list[date] = Field(..., description="Run dates served, oldest first")
    newest_run_date: date = Field(..., description="What /recommendations serves without run_date")
    model_version: str = Field(..., description="Model that scored the newest run date")
    rows: int = Field(..., description="Rows in the snapshot (all run dates)")
    customers: int = Field(..., description="Customers with recommendations on the newest run date")
    published_at: datetime | None = Field(..., description="When the pipeline published the snapshot (UTC)")
    age_seconds: float | None = Field(..., description="Seconds since published_at")
    loaded_at: datetime = Field(..., description="When this server loaded the snapshot (UTC)")
    last_reload_error: str | None = Field(
        ..., description="Why the newest file on disk is not being served, if it is not (else null)"
    )
    committed_run_date: date | None = Field(
        ..., description="Newest run date the pipeline has committed recommendations for (null if it does not say)"
    )


class Unavailable(BaseModel):
    """No snapshot is loaded yet."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["unavailable"]
    detail: str
    last_reload_error: str | None = None


class Problem(BaseModel):
    """An error a client can act on."""

    detail: str = Field(..., description="What is wrong, naming the customer, run date or setting")
