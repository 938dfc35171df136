-- Products in the warehouse's shape, all in the first day's partition. A missing
-- base price is the median unit price the product sold at (else its category's,
-- else all sales'); a missing name is "<brand> <subcategory or category>".
with sold as (
    select i.product_id, p.category, i.unit_price
    from typed_order_items i join typed_products p using (product_id)
),
by_product as (select product_id, median(unit_price) as price from sold group by product_id),
by_category as (select category, median(unit_price) as price from sold group by category),
overall as (select median(unit_price) as price from sold)
select
    p.product_id,
    coalesce(p.name, concat_ws(' ', p.brand, coalesce(p.subcategory, p.category))) as name,
    p.category,
    p.subcategory,
    p.brand,
    coalesce(p.base_price, round(coalesce(bp.price, bc.price, (select price from overall)), 2)) as base_price,
    p.margin,
    p.shelf_life_days,
    $first_day as day
from typed_products p
left join by_product bp using (product_id)
left join by_category bc using (category)
order by p._row
