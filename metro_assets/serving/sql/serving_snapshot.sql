-- The serving snapshot: the newest run dates' recommendations joined with what
-- the API returns. $run_dates: how many run dates to publish. The API's score is the predicted
-- redemption probability (p_redeem; older rows: score), whatever objective ordered the list.
select
    r.run_date, r.customer_id, r.rank, r.offer_id, o.product_id, p.name as product_name,
    o.discount_type, o.discount_value, coalesce(r.p_redeem, r.score) as score, o.end_date as expiry_date,
    r.strategy, r.model_version,
    coalesce(r.reasons, []::VARCHAR[]) as reasons  -- rows written before reasons existed: none
from recommendations r
join offers o using (offer_id)
join products p using (product_id)
where r.run_date in (select distinct run_date from recommendations order by run_date desc limit $run_dates)
order by r.run_date, r.customer_id, r.rank
