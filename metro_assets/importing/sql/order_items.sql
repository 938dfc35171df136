-- Order lines in the warehouse's shape, on their order's day. A missing discount
-- is 0, and a missing is_promo is "the line has a discount".
select
    i.order_item_id,
    i.order_id,
    i.product_id,
    i.quantity,
    i.unit_price,
    coalesce(i.is_promo, coalesce(i.discount_amount, 0) > 0) as is_promo,
    coalesce(i.discount_amount, 0) as discount_amount,
    o.order_timestamp::date as day
from typed_order_items i
join typed_orders o using (order_id)
order by i._row
