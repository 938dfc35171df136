-- The randomised units of the uplift training set, impression days [$window_start, $label_cutoff):
-- * treated: exploration impressions (a slot filled at random from the eligible offers), each
--   (customer, offer, day) once, with its position;
-- * control: customers of the randomised holdout (no offers at all) on sampled days ($rate_ppm per
--   million customer-days, a hash of the customer, day and $seed), each with $per_day offers drawn
--   at random (hash) from the offers eligible for them that day (live, published before the day,
--   store and segment in scope): the same draw exploration makes.
-- Outcome `purchased`: the customer bought the offer's product in [day, day + 7), with or without it.
with treated as (
    select customer_id, offer_id, day, min(position) as position
    from impressions
    where is_exploration and day >= $window_start and day < $label_cutoff
    group by all
),
days as (
    select unnest(range($window_start::timestamp, $label_cutoff::timestamp, interval 1 day))::date as day
),
holdout_days as (
    select a.customer_id, d.day, c.home_store_id, c.segment
    from experiment_assignments a
    join days d on d.day between a.from_date and a.to_date
    join customers c on c.customer_id = a.customer_id and c.join_date < d.day
    where a.arm = 'holdout' and hash(a.customer_id, d.day, $seed) % 1000000 < $rate_ppm
),
control as (
    select h.customer_id, f.offer_id, h.day, null::integer as position
    from holdout_days h
    join offers f on f.start_date <= h.day and h.day <= f.end_date and f.day < h.day
    where {store_ok} and {segment_ok}
    qualify row_number() over (partition by h.customer_id, h.day
                               order by hash(h.customer_id, f.offer_id, h.day, $seed)) <= $per_day
),
units as (
    select customer_id, offer_id, day, true as treated, position from treated
    union all
    select customer_id, offer_id, day, false as treated, position from control
)
select u.customer_id, u.offer_id, u.day, u.treated, u.position,
       exists (
           select 1 from orders o join order_items i on i.order_id = o.order_id
           where o.customer_id = u.customer_id and i.product_id = f.product_id
             and o.day >= u.day and o.day < u.day + interval 7 day
       ) as purchased
from units u join offers f on f.offer_id = u.offer_id
order by u.day, u.customer_id, u.offer_id
