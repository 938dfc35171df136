-- Offers in the warehouse's shape, each in the partition of the day it was
-- published: a week before it starts, clipped to the first day. The discount is
-- kept only as a known pair (type among the three, and a value; BOGO defaults to
-- one free item); anything else leaves both NULL: the depth is unknown.
with typed as (
    select *, lower(discount_type) as kind,
        coalesce(discount_value, case when lower(discount_type) = 'bogo' then 1.0 end) as value
    from typed_offers
),
known as (
    select *, kind in ('percentage', 'fixed_amount', 'bogo') and value is not null as depth_known from typed
)
select
    offer_id,
    product_id,
    case when depth_known then kind end as discount_type,
    case when depth_known then value end as discount_value,
    start_date,
    end_date,
    store_scope,
    segment_scope,
    max_redemptions,
    greatest(start_date - 7, $first_day) as day
from known
order by _row
