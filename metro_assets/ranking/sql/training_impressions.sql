-- Impressions whose 7-day label window closed before the training day, each
-- (customer, offer) once (its first showing in the window), labelled 1 when the
-- customer redeemed that offer within 7 days of being shown it.
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
    ) as label
from shown s
order by day, customer_id, offer_id
