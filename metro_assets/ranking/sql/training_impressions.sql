-- Impressions whose 7-day label window closed before the training day, each
-- (customer, offer) once (its first showing in the window), with two labels:
-- `redeemed` (the customer redeemed that offer within 7 days of being shown it)
-- and `purchased` (the customer bought the offer's product within 7 days, with
-- or without the offer: a denser signal for retailers with few redemptions).
-- $window_start: first impression day; $label_cutoff: training day - 7 days.
with shown as (
    select customer_id, offer_id, min(shown_timestamp) as shown_timestamp
    from impressions
    where shown_timestamp >= $window_start and shown_timestamp < $label_cutoff
    group by customer_id, offer_id
)
select
    s.customer_id,
    s.offer_id,
    s.shown_timestamp::date as day,
    exists (
        select 1 from redemptions r
        where r.customer_id = s.customer_id and r.offer_id = s.offer_id
          and r.redeemed_timestamp >= s.shown_timestamp
          and r.redeemed_timestamp < s.shown_timestamp + interval 7 day
    ) as redeemed,
    exists (
        select 1 from orders o
        join order_items i on i.order_id = o.order_id
        join offers f on f.offer_id = s.offer_id and f.product_id = i.product_id
        where o.customer_id = s.customer_id
          and o.order_timestamp >= s.shown_timestamp
          and o.order_timestamp < s.shown_timestamp + interval 7 day
    ) as purchased
from shown s
order by day, customer_id, offer_id
