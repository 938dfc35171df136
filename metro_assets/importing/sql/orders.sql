-- Orders in the warehouse's shape, on the day of their timestamp. A missing
-- total is the sum of the lines' quantity * unit_price - discount_amount; a
-- missing line count is the number of lines (0 for an order without lines).
with lines as (
    select order_id,
        round(sum(quantity * unit_price - coalesce(discount_amount, 0)), 2) as total_amount,
        count(*)::integer as num_items
    from typed_order_items
    group by order_id
)
select
    o.order_id,
    o.customer_id,
    o.store_id,
    o.order_timestamp,
    coalesce(o.total_amount, l.total_amount, 0) as total_amount,
    coalesce(o.num_items, l.num_items, 0) as num_items,
    o.order_timestamp::date as day
from typed_orders o
left join lines l using (order_id)
order by o._row
