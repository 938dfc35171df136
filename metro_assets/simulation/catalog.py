"""The simulated retailer's fixed world: categories, segments and their tastes.

Plain data, no randomness: the simulator draws everything else from these.
"""

from __future__ import annotations

import numpy as np

SEGMENTS = ("budget", "premium", "family", "horeca")
SEGMENT_SHARES = np.array([0.40, 0.20, 0.30, 0.10])

# Per segment: visits per day, order lines per order, extra units per line,
# promo sensitivity Beta(a, b), share promo-only, share discount-blind.
SEGMENT_VISITS = np.array([0.185, 0.205, 0.205, 0.225])
# World v2: exploratory lines of a big trip (mean), regular products (mean), share of top-up trips.
SEGMENT_BASKET = np.array([8.0, 9.5, 10.5, 14.0])
SEGMENT_REGULARS = np.array([6.5, 7.0, 9.0, 10.0])
SEGMENT_TOPUP = np.array([0.40, 0.45, 0.35, 0.30])
SEGMENT_EXTRA_UNITS = np.array([0.2, 0.2, 0.5, 3.0])
SEGMENT_PROMO_BETA = np.array([[6.0, 3.0], [2.0, 7.0], [4.0, 4.0], [2.0, 6.0]])
SEGMENT_PROMO_ONLY = np.array([0.12, 0.01, 0.05, 0.02])
SEGMENT_DISCOUNT_BLIND = np.array([0.02, 0.25, 0.08, 0.20])

# name, median price, margin, shelf life (days), subcategories
CATEGORIES = (
    ("dairy", 2.2, 0.22, 14, ("Whole Milk", "Yogurt", "Butter", "Cheese", "Eggs")),
    ("bakery", 2.0, 0.35, 4, ("Bread", "Croissants", "Rolls", "Cake")),
    ("produce", 1.8, 0.30, 7, ("Apples", "Tomatoes", "Potatoes", "Salad", "Bananas")),
    ("meat", 8.5, 0.20, 5, ("Chicken", "Beef Steak", "Pork Chops", "Sausages", "Minced Beef")),
    ("seafood", 11.0, 0.25, 3, ("Salmon", "Shrimp", "Cod", "Mussels")),
    ("deli", 4.5, 0.38, 10, ("Ham", "Salami", "Olives", "Hummus")),
    ("frozen", 4.0, 0.28, 180, ("Pizza", "Vegetables", "Ice Cream", "Fries")),
    ("pantry", 2.5, 0.25, 365, ("Pasta", "Rice", "Flour", "Olive Oil", "Sauce")),
    ("breakfast", 3.2, 0.30, 270, ("Cereal", "Muesli", "Jam", "Honey")),
    ("snacks", 2.4, 0.40, 180, ("Crisps", "Nuts", "Crackers", "Popcorn")),
    ("confectionery", 2.8, 0.42, 270, ("Chocolate", "Candy", "Biscuits", "Pralines")),
    ("beverages", 1.9, 0.30, 365, ("Mineral Water", "Juice", "Cola", "Iced Tea")),
    ("alcohol", 12.0, 0.30, 730, ("Red Wine", "Beer", "Prosecco", "Gin")),
    ("coffee_tea", 6.0, 0.38, 365, ("Coffee Beans", "Ground Coffee", "Green Tea", "Capsules")),
    ("household", 5.0, 0.33, 1000, ("Detergent", "Paper Towels", "Dish Soap", "Bin Bags")),
    ("personal_care", 4.2, 0.42, 1000, ("Shampoo", "Toothpaste", "Soap", "Deodorant")),
    ("baby", 9.0, 0.25, 365, ("Diapers", "Baby Food", "Wipes", "Formula")),
    ("pet", 7.0, 0.30, 365, ("Dog Food", "Cat Food", "Cat Litter", "Treats")),
    ("bbq_grill", 6.5, 0.30, 365, ("Charcoal", "Marinade", "Grill Sauce", "Skewers")),
    ("baking", 2.6, 0.30, 365, ("Sugar", "Baking Powder", "Cocoa", "Yeast")),
)
CATEGORY_NAMES = tuple(c[0] for c in CATEGORIES)
CATEGORY_ARRAY = np.array(CATEGORY_NAMES)
CATEGORY_INDEX = {name: i for i, name in enumerate(CATEGORY_NAMES)}

# How much more than average each segment buys of a category (1 = average).
_SEGMENT_TASTE = {
    "budget": {"pantry": 2.2, "produce": 1.6, "frozen": 1.8, "household": 1.6, "snacks": 1.5, "beverages": 1.3},
    "premium": {"deli": 2.4, "seafood": 2.6, "alcohol": 1.8, "coffee_tea": 2.2, "produce": 1.4, "bakery": 1.3},
    "family": {"dairy": 2.2, "bakery": 1.8, "baby": 3.0, "breakfast": 2.0, "snacks": 1.6, "produce": 1.4},
    "horeca": {"meat": 2.8, "produce": 2.0, "beverages": 2.0, "alcohol": 2.0, "pantry": 1.8, "seafood": 1.6},
}
SEGMENT_CATEGORY_PRIOR = np.ones((len(SEGMENTS), len(CATEGORIES)))
for _s, _seg in enumerate(SEGMENTS):
    for _cat, _w in _SEGMENT_TASTE[_seg].items():
        SEGMENT_CATEGORY_PRIOR[_s, CATEGORY_INDEX[_cat]] = _w
SEGMENT_CATEGORY_PRIOR /= SEGMENT_CATEGORY_PRIOR.sum(axis=1, keepdims=True)

BRANDS_PER_CATEGORY = 10
PRIVATE_LABEL = "Metro Chef"
_BRAND_STEMS = (
    "Alpen", "Nord", "Sun", "Golden", "Green", "Royal", "Blue", "Silver", "Wild", "Happy",
    "Ocean", "Farm", "Old", "Bright", "True", "Pure", "Urban", "Little", "Grand", "Red",
)
_BRAND_TAILS = ("hof", "field", "valley", "crest", "mill", "wood", "brook", "gate", "land", "well")
# Pack sizes by how a subcategory is sold (by weight unless listed).
SIZES = {
    "weight": ("250g", "500g", "1kg", "2kg", "Bio 500g", "Family Pack", "Classic 400g", "XL 1.5kg", "Value 750g",
               "Premium 300g"),
    "volume": ("330ml", "500ml", "1L", "1.5L", "2L", "6 x 1.5L", "Bio 1L", "Family Pack", "Classic 750ml", "XL 3L"),
    "count": ("6 pcs", "10 pcs", "12 pcs", "20 pcs", "30 pcs", "Family Pack", "Bio", "Classic", "XL", "Value Pack"),
}
SOLD_BY = {
    **dict.fromkeys(("Whole Milk", "Mineral Water", "Juice", "Cola", "Iced Tea", "Red Wine", "Beer", "Prosecco",
                     "Gin", "Olive Oil", "Detergent", "Dish Soap", "Shampoo", "Marinade", "Grill Sauce"), "volume"),
    **dict.fromkeys(("Eggs", "Croissants", "Rolls", "Diapers", "Wipes", "Capsules", "Bin Bags", "Paper Towels",
                     "Skewers", "Soap"), "count"),
}
# World v2: days one purchase lasts a household (before the shelf-life cap), and how
# likely a product of the category is to be bought regularly (1 = average).
CYCLE_DAYS = np.array([20, 14, 15, 26, 36, 30, 60, 75, 60, 36, 45, 26, 52, 63, 90, 100, 21, 33, 60, 100], dtype=float)
REGULARITY = np.array([1.8, 1.8, 1.6, 1.2, 0.6, 0.9, 0.8, 0.8, 1.0, 0.9, 0.7, 1.2, 0.6, 1.2, 0.7, 0.7, 1.3, 1.3,
                       0.3, 0.4])
# Complements: a line of the first subcategory often brings one of the second.
COMPLEMENTS = {
    "Pasta": "Sauce", "Bread": "Butter", "Crisps": "Cola", "Charcoal": "Grill Sauce", "Ground Coffee": "Whole Milk",
    "Cereal": "Whole Milk", "Beer": "Nuts", "Red Wine": "Cheese", "Salad": "Olive Oil", "Pizza": "Cola",
    "Flour": "Yeast", "Diapers": "Wipes", "Dog Food": "Treats", "Minced Beef": "Pasta", "Salmon": "Salad",
    "Coffee Beans": "Biscuits", "Sausages": "Marinade", "Croissants": "Jam", "Rolls": "Ham", "Tomatoes": "Olive Oil",
}
CHANNELS = ("email", "app", "in-store")
CHANNEL_SHARES = np.array([0.45, 0.35, 0.20])
LOYALTY_TIERS = ("bronze", "silver", "gold")


def category_brands(category: int) -> tuple[str, ...]:
    """The brands sold in a category; the private label is the first."""
    brands = [PRIVATE_LABEL]
    for j in range(BRANDS_PER_CATEGORY - 1):
        stem = _BRAND_STEMS[(category * 7 + j * 3) % len(_BRAND_STEMS)]
        tail = _BRAND_TAILS[(category + j * 7) % len(_BRAND_TAILS)]
        brands.append(f"{stem}{tail}")
    return tuple(brands)
