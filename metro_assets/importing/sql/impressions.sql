-- Impressions in the warehouse's shape, on the day they were shown.
select
    impression_id,
    customer_id,
    offer_id,
    shown_timestamp,
    channel,
    position,          -- optional: NULL when the export has no logged position
    propensity,
    is_exploration,
    shown_timestamp::date as day
from typed_impressions
order by _row
