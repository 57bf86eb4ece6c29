"""Purchases per product: how many of a cohort bought each product, how often, for how much.

The purchases are those `funnelstats` counts in `purchased` and `revenue` (the cohort's,
this funnel's or every funnel's, at or after the enrollment was created), so the
products of a funnel add up to its purchases and revenue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.store.funnelstats import Money, add_money, cohort_of, with_counted_purchases
from engine.store.tables import ENROLLMENT, EVENT


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
    """Per (funnel, product): the cohort's buyers, purchases and revenue per currency; one statement."""
    # One GROUP BY per (enrollment, product, currency), then one per (funnel, product,
    # currency): a loop of queries per product would cost a statement each. row_number()
    # marks one row per buyer and product, so a buyer who paid in two currencies is still
    # one customer of it. The inner rows are one per buyer, like `funnelstats`' pivot of
    # purchases: a few thousand where the list has a few hundred thousand people.
    per_buyer = cohort_of(
        sa.select(
            ENROLLMENT.c.funnel,
            EVENT.c.product,
            EVENT.c.currency,
            sa.func.count().label("purchases"),
            sa.func.sum(EVENT.c.amount).label("amount"),
            sa.func.row_number()
            .over(partition_by=(ENROLLMENT.c.id, EVENT.c.product), order_by=EVENT.c.currency)
            .label("nth"),
        )
        .select_from(with_counted_purchases(ENROLLMENT))
        .group_by(ENROLLMENT.c.funnel, ENROLLMENT.c.id, EVENT.c.product, EVENT.c.currency),
        funnel,
        since,
    ).subquery("per_buyer")
    keys = (per_buyer.c.funnel, per_buyer.c.product, per_buyer.c.currency)
    statement = sa.select(
        *keys,
        sa.func.sum(sa.case((per_buyer.c.nth == 1, 1), else_=0)),
        sa.func.sum(per_buyer.c.purchases),
        sa.func.sum(per_buyer.c.amount),
    ).group_by(*keys)
    found: dict[tuple[str, str | None], ProductSales] = {}
    for name, product, currency, customers, purchases, amount in conn.execute(statement):
        sales = found.setdefault((name, product), ProductSales(name, product))
        sales.customers += int(customers)
        sales.purchases += int(purchases)
        if amount is not None:  # purchases without an amount count, and add no money
            add_money(sales.revenue, {currency or "": float(amount)})
    return list(found.values())
