-- Customers in the warehouse's shape. A missing segment, or one outside the four
-- known ones, is 'unknown'; a missing join date is the day of the first order
-- (or the first day of the history); the row belongs to the day the customer
-- joined, members from before the history to its first day.
with first_orders as (
    select customer_id, min(order_timestamp)::date as first_order
    from typed_orders
    group by customer_id
)
select
    c.customer_id,
    case when lower(c.segment) in ('budget', 'premium', 'family', 'horeca') then lower(c.segment)
         else 'unknown' end as segment,
    c.home_store_id,
    coalesce(c.join_date, f.first_order, $first_day) as join_date,
    c.loyalty_tier,
    coalesce(c.email_consent, false) as email_consent,
    greatest(coalesce(c.join_date, f.first_order, $first_day), $first_day) as day
from typed_customers c
left join first_orders f using (customer_id)
order by c._row
