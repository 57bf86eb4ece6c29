"""Purchases per product: how many of a cohort bought each product, how often, for how much.

The purchases are those `funnelstats` counts in `purchased` and `revenue` (the cohort's,
this funnel's or every funnel's, at or after the enrollment was created), so the
products of a funnel add up to its purchases and revenue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection

from engine.store.funnelstats import Money, add_money
from engine.store.tallies import tally_rows


@dataclass
class ProductSales:
    """One product's buyers in one funnel's cohort; `product` None: purchases that named none."""

    funnel: str
    product: str | None
    customers: int = 0  # enrollments (one per subscriber and funnel) with at least one purchase of it
    purchases: int = 0
    revenue: Money = field(default_factory=dict)


def product_sales(
    conn: Connection, funnel: str | None = None, since: datetime | None = None
) -> list[ProductSales]:
    """Per (funnel, product): the cohort's buyers, purchases and revenue per currency, from the tallies."""
    found: dict[tuple[str, str | None], ProductSales] = {}
    for row in tally_rows(conn, funnel, since, ("product", "customer")):
        sales = found.setdefault((row.funnel, row.k1 or None), ProductSales(row.funnel, row.k1 or None))
        if row.kind == "customer":
            sales.customers += row.n
            continue
        sales.purchases += row.n
        if row.priced:  # purchases without an amount count, and add no money
            add_money(sales.revenue, {row.k2: row.amount})
    return [sales for sales in found.values() if sales.purchases or sales.customers]
