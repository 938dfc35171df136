-- Redemptions in the warehouse's shape, on the day they were redeemed.
select
    redemption_id,
    customer_id,
    offer_id,
    order_id,
    redeemed_timestamp,
    redeemed_timestamp::date as day
from typed_redemptions
order by _row
