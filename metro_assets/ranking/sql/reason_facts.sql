-- What a reason may name for each served pair of $day ({requests}: customer_id, offer_id): the offer's
-- category, brand and discount type as the day's offer_features saw them, its discount value and
-- product name from the catalogue, and the customer's segment.
select r.customer_id, r.offer_id, ofe.category, ofe.brand, ofe.discount_type, o.discount_value,
       p.name as product_name, cf.segment
from {requests} r
left join offer_features ofe on ofe.offer_id = r.offer_id and ofe.day = $day
left join customer_features cf on cf.customer_id = r.customer_id and cf.day = $day
left join (select distinct on (offer_id) offer_id, product_id, discount_value from offers
           order by offer_id, day desc) o on o.offer_id = r.offer_id
left join (select distinct on (product_id) product_id, name from products
           order by product_id, day desc) p on p.product_id = o.product_id
