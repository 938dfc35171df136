-- The order a redemption without order_id belongs to: the same customer's order
-- on the same day, preferring orders with the offer's product, then the nearest
-- in time, then the smallest id. No such order: order_id stays NULL (reported).
with candidates as (
    select r._row, o.order_id,
        exists (select 1 from typed_order_items i where i.order_id = o.order_id and i.product_id = f.product_id)
            as has_product,
        abs(epoch(o.order_timestamp) - epoch(r.redeemed_timestamp)) as distance
    from typed_redemptions r
    join typed_offers f using (offer_id)
    join typed_orders o
      on o.customer_id = r.customer_id and o.order_timestamp::date = r.redeemed_timestamp::date
    where r.order_id is null
)
select _row, order_id
from candidates
qualify row_number() over (partition by _row order by has_product desc, distance, order_id) = 1
