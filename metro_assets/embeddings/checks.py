"""Data-quality checks on ``product_embeddings``."""

from metro_assets.checking import Check

IN_RUN = "day >= $start and day < $end"

EMBEDDING_CHECKS = [
    Check(
        "product_embeddings_have_one_vector_per_product",
        "product_embeddings",
        "one row per (day, product_id)",
        f"select product_id from product_embeddings where {IN_RUN} group by day, product_id having count(*) > 1",
    ),
    Check(
        "product_embeddings_are_finite_and_of_one_size",
        "product_embeddings",
        "every vector has the day's size and finite, not all-zero values",
        f"""select product_id from product_embeddings e
            where {IN_RUN} and (len(vector) <> (select max(len(vector)) from product_embeddings where day = e.day)
                  or list_sum(list_transform(vector, lambda x: x * x)) = 0
                  or list_bool_or(list_transform(vector, lambda x: isnan(x) or isinf(x))))""",
    ),
    Check(
        "product_embeddings_have_products",
        "product_embeddings",
        "every product_id is in products",
        f"select e.product_id from product_embeddings e anti join products p using (product_id) where e.{IN_RUN}",
    ),
]
