"""Customers per product: the store's one GROUP BY, and the report's `products` in `funnel stats`
(text, --json, --csv --products), GET /api/stats and the dashboard's funnel page, on SQLite and
PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import engine.cli.stats as stats_cli
from engine.stats.report import NO_PATH, OWN_SEGMENT, funnel_report
from engine.store.funnelstats import funnel_numbers
from engine.store.products import ProductSales, product_sales
from tests.cli.conftest import MONDAY, Cli
from tests.flow.plans import make_plan, segment
from tests.scheduler.harness import Harness
from tests.store.test_funnelstats import DAY, T0, Rows
from tests.support.project import minimal_project
from tests.web.dashboard_site import PASSWORD, log_in
from tests.web.served import serve

API_KEY = "products-test-key"
# The minimal funnel, with a `products:` map: a pro-kit starts segment two's customer path.
PRODUCTS = "products:\n  pro-kit: two\n\nsegments:\n"


@pytest.fixture
def rows(db_engine: Engine) -> Iterable[Rows]:
    with db_engine.begin() as conn:
        yield Rows(conn)


def _by_product(found: list[ProductSales]) -> dict[tuple[str, str | None], tuple[int, int, dict[str, float]]]:
    return {(s.funnel, s.product): (s.customers, s.purchases, s.revenue) for s in found}


def test_customers_count_each_buyer_once_and_purchases_every_purchase(rows: Rows) -> None:
    ann, _ = rows.person("ann@example.com")
    bob, _ = rows.person("bob@example.com")
    cy, _ = rows.person("cy@example.com", at=T0 + 2 * DAY)
    rows.event(ann, "purchase", T0 + DAY, product="kit", amount=20.0, currency="EUR")
    rows.event(ann, "purchase", T0 + DAY, funnel=None, product="kit", amount=25.0, currency="EUR")
    rows.event(ann, "purchase", T0 + DAY, product="kit", amount=30.0, currency="USD")  # one buyer still
    rows.event(bob, "purchase", T0 + DAY, product="kit", amount=None, currency=None)  # no amount: no money
    rows.event(bob, "purchase", T0 + DAY, product="book", amount=0.1, currency=None)
    rows.event(bob, "purchase", T0 + DAY, product="book", amount=0.2, currency=None)
    rows.event(cy, "purchase", T0 + 3 * DAY, amount=5.0, currency="EUR")  # no product named
    rows.event(cy, "purchase", T0 + DAY, product="kit", amount=99.0, currency="EUR")  # before signing up
    rows.event(cy, "purchase", T0 + 3 * DAY, funnel="other", product="kit", amount=99.0, currency="EUR")
    rows.event(ann, "answer", T0 + DAY, question="level", answer="new")  # not a purchase
    assert _by_product(product_sales(rows.conn, "f")) == {
        ("f", "kit"): (2, 4, {"EUR": 45.0, "USD": 30.0}),
        ("f", "book"): (1, 2, {"": 0.3}),
        ("f", None): (1, 1, {"EUR": 5.0}),
    }
    # The products add up to the funnel's purchases and revenue.
    numbers = funnel_numbers(rows.conn, "f")["f"]
    assert numbers.purchases == sum(s.purchases for s in product_sales(rows.conn, "f")) == 7
    assert numbers.revenue == {"EUR": 50.0, "USD": 30.0, "": 0.3}
    # --since keeps the cohort's purchases only, as it does for revenue: Cy signed up on day 2.
    cohort = product_sales(rows.conn, "f", since=T0 + 2 * DAY)
    assert _by_product(cohort) == {("f", None): (1, 1, {"EUR": 5.0})}
    assert product_sales(rows.conn, "f", since=T0 + 3 * DAY) == []


def test_every_funnel_at_once_and_a_shop_purchase_in_each(rows: Rows) -> None:
    ann, _ = rows.person("ann@example.com")
    rows.person("ann@example.com", funnel="other")
    rows.event(ann, "purchase", T0 + DAY, funnel=None, product="kit", amount=10.0, currency="EUR")
    assert _by_product(product_sales(rows.conn)) == {
        ("f", "kit"): (1, 1, {"EUR": 10.0}), ("other", "kit"): (1, 1, {"EUR": 10.0})}


def test_the_counts_equal_plain_count_queries_on_many_rows(rows: Rows) -> None:
    for i in range(60):
        sid, _ = rows.person(f"p{i}@example.com", at=T0 + (i % 3) * DAY)
        for n in range(i % 4):
            product = (None, "a", "b", "c")[(i + n) % 4]
            rows.event(sid, "purchase", T0 + 5 * DAY, funnel=None, product=product, amount=float(n),
                       currency=("EUR", "USD")[n % 2])
    found = _by_product(product_sales(rows.conn, "f", since=T0 + DAY))

    def scalar(sql: str, product: str | None) -> int:
        return int(rows.conn.execute(sa.text(sql), {"p": product}).scalar_one())

    bought = ("FROM enrollment e JOIN event v ON v.subscriber_id = e.subscriber_id AND v.type = 'purchase' "
              "AND v.at >= e.created_at WHERE e.funnel = 'f' AND e.created_at >= '2026-03-03 09:00:00' "
              "AND (v.product = :p OR (v.product IS NULL AND :p IS NULL))")
    assert set(found) == {("f", p) for p in (None, "a", "b", "c")}
    for (_, product), (customers, purchases, _) in found.items():
        assert customers == scalar(f"SELECT COUNT(DISTINCT e.id) {bought}", product)
        assert purchases == scalar(f"SELECT COUNT(*) {bought}", product)


def test_the_report_names_the_customer_path_each_product_starts(rows: Rows) -> None:
    plan = replace(
        make_plan(segment("one", exit_products=frozenset({"kit", "course"})),
                  segment("two", exit_products=frozenset({"kit"})),
                  segment("three", customer="", exit_products=frozenset({"course"}))),
        products={"kit": "two", "course": "three", "spare": "two"},
    )
    ann, _ = rows.person("ann@example.com", funnel="test")
    for product in ("addon", "kit", "course", None):
        rows.event(ann, "purchase", T0 + DAY, funnel="test", product=product, amount=1.0, currency="EUR")
    [funnel] = funnel_report(rows.conn, {"test": plan}, "test", now=T0 + DAY)["funnels"]
    assert [(p["product"], p["name"], p["purchases"], p["customer_path"], p["customer_path_name"])
            for p in funnel["products"]] == [
        ("kit", "kit", 1, "two", "Two"),
        # Segment three has no customer emails: the buyer stays on their own segment's path.
        ("course", "course", 1, None, OWN_SEGMENT),
        ("spare", "spare", 0, "two", "Two"),  # in products:, bought by nobody
        ("addon", "addon", 1, None, NO_PATH),  # every sales path exits on other products
        (None, "no product given", 1, None, NO_PATH),
    ]


# --- the report, through every reader ---------------------------------------------------------


@dataclass
class Shop:
    """The minimal funnel with a products: map, a few purchases, the CLI and the served daemon."""

    cli: Cli
    harness: Harness
    http: httpx.Client

    def api(self, **query: str) -> httpx.Response:
        """GET /api/stats with the key."""
        return self.http.get("/api/stats", params=query, headers={"Authorization": f"Bearer {API_KEY}"})


@pytest.fixture
def shop(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    """Ann buys the pro-kit twice, Bob a book (not in products:), Cy something unnamed; Dan signs up on
    Wednesday and buys a pro-kit."""
    monkeypatch.chdir(tmp_path)
    project = minimal_project(tmp_path / "project")
    funnel_file = project / "sequences" / "minimal.yaml"
    funnel_file.write_text(funnel_file.read_text(encoding="utf-8").replace("segments:\n", PRODUCTS, 1),
                           encoding="utf-8")
    harness = Harness(db_url, project, MONDAY, api_key=API_KEY, admin_password=PASSWORD,
                      base_url="http://127.0.0.1:8000")
    monkeypatch.setattr(stats_cli, "clock", harness.clock)
    try:
        for name in ("ann", "bob", "cy"):
            harness.add(f"{name}@example.com")
        harness.run_until(MONDAY + timedelta(days=1))
        harness.event("ann@example.com", "purchase", funnel="minimal", product="pro-kit", amount=20.0,
                      currency="EUR")
        harness.event("ann@example.com", "purchase", product="pro-kit", amount=25.0, currency="EUR")
        harness.event("bob@example.com", "purchase", product="book", amount=10.0, currency="EUR")
        harness.event("cy@example.com", "purchase", amount=5.0, currency="EUR")
        harness.run_until(MONDAY + timedelta(days=2))
        harness.add("dan@example.com")
        harness.event("dan@example.com", "purchase", product="pro-kit", amount=30.0, currency="EUR")
        with serve(harness) as http:
            yield Shop(Cli(project, db_url), harness, http)
    finally:
        harness.close()


PRO_KIT = {"product": "pro-kit", "name": "pro-kit", "customer_path": "two",
           "customer_path_name": "Segment two"}
BOOK = {"product": "book", "name": "book", "customer_path": None,
        "customer_path_name": "the buyer's own segment"}
NONE = {"product": None, "name": "no product given", "customer_path": None,
        "customer_path_name": "the buyer's own segment"}


def test_json_lists_the_mapped_products_then_the_others_then_the_unnamed(shop: Shop) -> None:
    result = shop.cli("stats", "--json")
    assert result.exit_code == 0, result.output
    [funnel] = json.loads(result.stdout)["funnels"]
    assert funnel["products"] == [
        {**PRO_KIT, "customers": 2, "purchases": 3, "revenue": {"EUR": 75.0}},
        {**BOOK, "customers": 1, "purchases": 1, "revenue": {"EUR": 10.0}},
        {**NONE, "customers": 1, "purchases": 1, "revenue": {"EUR": 5.0}},
    ]
    assert funnel["purchases"] == 5 and funnel["revenue"] == {"EUR": 90.0}
    since = json.loads(shop.cli("stats", "--since", "2026-03-04", "--json").stdout)["funnels"][0]
    assert since["products"] == [{**PRO_KIT, "customers": 1, "purchases": 1, "revenue": {"EUR": 30.0}}]
    later = json.loads(shop.cli("stats", "--since", "2026-03-05", "--json").stdout)["funnels"][0]
    assert later["products"] == [{**PRO_KIT, "customers": 0, "purchases": 0, "revenue": {}}]


def test_api_stats_returns_the_same_products(shop: Shop) -> None:
    for query in ({}, {"funnel": "minimal", "since": "2026-03-04"}):
        served = shop.api(**query)
        assert served.status_code == 200
        args = [*query.values()] if not query else ["minimal", "--since", query["since"]]
        printed = shop.cli("stats", *args, "--json")
        assert served.json() == json.loads(printed.stdout)
    assert [p["product"] for p in shop.api().json()["funnels"][0]["products"]] == ["pro-kit", "book", None]


def test_the_text_shows_a_products_table(shop: Shop) -> None:
    result = shop.cli("stats")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index("Products (customers: people who bought it; "
                        "the customer path a purchase of it starts)")
    assert lines[start + 1:start + 5] == [
        "  product           customers  purchases    revenue  customer path",
        "  pro-kit                   2          3  EUR 75.00  Segment two (two)",
        "  book                      1          1  EUR 10.00  the buyer's own segment",
        "  no product given          1          1   EUR 5.00  the buyer's own segment",
    ]
    assert lines[start + 5] == ""


def test_csv_products_is_one_row_per_funnel_and_product(shop: Shop) -> None:
    result = shop.cli("stats", "--csv", "--products")
    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["funnel", "product", "customer_path", "customers", "purchases", "revenue_EUR"],
        ["minimal", "pro-kit", "two", "2", "3", "75.0"],
        ["minimal", "book", "", "1", "1", "10.0"],
        ["minimal", "", "", "1", "1", "5.0"],
    ]
    steps = shop.cli("stats", "--csv")
    assert steps.stdout.startswith("funnel,step,path,")  # the emails' CSV as before
    alone = shop.cli("stats", "--products")
    assert alone.exit_code == 2
    assert "--products picks the rows of --csv; write --csv --products" in alone.stderr


def test_the_dashboard_funnel_page_shows_the_products(shop: Shop) -> None:
    assert log_in(shop.http).status_code == 303
    page = shop.http.get("/dashboard/funnels/minimal")
    assert page.status_code == 200
    section = page.text.split('<section class="card" id="products">')[1].split("</section>")[0]
    rows = section.split("<tbody>")[1].split("</tr>")
    assert '<tr data-product="pro-kit"><th scope="row">pro-kit</th>' in rows[0]
    assert '<td class="num">2</td><td class="num">3</td>' in rows[0]
    assert 'Segment two <span class="id">two</span>' in rows[0]
    assert '<th scope="row">book</th>' in rows[1] and "the buyer&#39;s own segment" in rows[1]
    assert '<th scope="row"><em>no product given</em></th>' in rows[2]
    later = shop.http.get("/dashboard/funnels/minimal?since=2026-03-04")
    section = later.text.split('id="products">')[1].split("</section>")[0]
    assert "book" not in section and '<td class="num">1</td><td class="num">1</td>' in section
