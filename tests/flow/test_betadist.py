"""The Beta distribution without scipy: values derived by hand, the binomial identity, round trips."""

from __future__ import annotations

import random
from fractions import Fraction
from math import comb, isclose, sqrt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.flow.betadist import cdf, chance_above, chance_largest, chance_largest_at, density, quantile

QS = [0.001, 0.025, 0.1, 0.3, 0.5, 0.77, 0.975, 0.999]


@pytest.mark.parametrize("x", [0.0, 0.01, 0.2, 0.5, 0.93, 1.0])
def test_the_cdf_of_betas_with_a_closed_form(x: float) -> None:
    assert cdf(x, 1, 1) == pytest.approx(x, abs=1e-14)  # uniform
    assert cdf(x, 2, 1) == pytest.approx(x**2, abs=1e-14)
    assert cdf(x, 1, 2) == pytest.approx(1 - (1 - x) ** 2, abs=1e-14)
    assert cdf(x, 7, 1) == pytest.approx(x**7, abs=1e-14)
    assert cdf(x, 1, 40) == pytest.approx(1 - (1 - x) ** 40, abs=1e-14)


@pytest.mark.parametrize("a", [1, 2, 5, 50, 3_000, 400_000])
def test_a_symmetric_beta_is_half_below_one_half(a: int) -> None:
    assert cdf(0.5, a, a) == pytest.approx(0.5, abs=1e-12)
    assert quantile(0.5, a, a) == pytest.approx(0.5, abs=1e-9)


@given(st.integers(1, 60), st.integers(1, 60), st.fractions(0, 1, max_denominator=1000))
def test_the_cdf_is_the_binomial_tail_for_whole_numbers(a: int, b: int, x: Fraction) -> None:
    # I_x(a, b) = P(Binomial(a + b - 1, x) >= a), summed here in exact fractions
    n = a + b - 1
    exact = sum(comb(n, j) * x**j * (1 - x) ** (n - j) for j in range(a, n + 1))
    assert cdf(float(x), a, b) == pytest.approx(float(exact), abs=1e-12)


@given(st.integers(1, 10**6), st.integers(1, 10**6), st.floats(0, 1))
def test_the_cdf_mirrors(a: int, b: int, x: float) -> None:
    assert cdf(x, a, b) == pytest.approx(1 - cdf(1 - x, b, a), abs=1e-10)


@pytest.mark.parametrize("q", QS)
def test_quantiles_with_a_closed_form(q: float) -> None:
    assert quantile(q, 1, 1) == pytest.approx(q, abs=1e-9)
    assert quantile(q, 2, 1) == pytest.approx(sqrt(q), abs=1e-9)
    assert quantile(q, 1, 2) == pytest.approx(1 - sqrt(1 - q), abs=1e-9)
    assert quantile(q, 9, 1) == pytest.approx(q ** (1 / 9), abs=1e-9)
    assert quantile(q, 1, 300) == pytest.approx(1 - (1 - q) ** (1 / 300), abs=1e-9)
    assert quantile(q, 30, 30) == pytest.approx(1 - quantile(1 - q, 30, 30), abs=1e-9)


@given(st.integers(1, 10**6), st.integers(1, 10**6), st.floats(1e-6, 1 - 1e-6))
def test_a_quantile_is_where_the_cdf_reaches_it(a: int, b: int, q: float) -> None:
    x = quantile(q, a, b)
    # right to 1e-9 in x (the brief asks 1e-6): q lies between the CDF a billionth either side
    assert cdf(max(0.0, x - 1e-9), a, b) - 1e-12 <= q <= cdf(min(1.0, x + 1e-9), a, b) + 1e-12


def test_the_density_integrates_to_the_cdf() -> None:
    a, b, steps = 4, 9, 20_000
    width = 0.4 / steps
    area = sum(density((k + 0.5) * width, a, b) for k in range(steps)) * width
    assert area == pytest.approx(cdf(0.4, a, b), abs=1e-8)
    assert density(0.0, 1, 5) == pytest.approx(5) and density(1.0, 5, 1) == pytest.approx(5)
    assert density(0.0, 2, 5) == 0.0 and density(1.0, 5, 2) == 0.0


def test_chance_above_by_hand() -> None:
    assert chance_above((1, 1), (1, 1)) == pytest.approx(0.5, abs=1e-14)
    # X ~ Beta(2, 1) (density 2x) above a uniform Y: the integral of 2x * x = 2/3
    assert chance_above((2, 1), (1, 1)) == pytest.approx(2 / 3, abs=1e-14)
    assert chance_above((1, 1), (2, 1)) == pytest.approx(1 / 3, abs=1e-14)
    # X ~ Beta(1, 2) (density 2(1 - x)) above Beta(2, 1): the integral of 2(1 - x) * x^2 = 1/6
    assert chance_above((1, 2), (2, 1)) == pytest.approx(1 / 6, abs=1e-14)


@given(st.integers(1, 400), st.integers(1, 4_000), st.integers(1, 400), st.integers(1, 4_000))
def test_chance_above_agrees_with_the_integral(a: int, b: int, c: int, d: int) -> None:
    exact = chance_above((a, b), (c, d))
    assert exact + chance_above((c, d), (a, b)) == pytest.approx(1, abs=1e-10)
    assert chance_largest_at([(c, d), (a, b)], 1) == pytest.approx(exact, abs=2e-5)


def test_chance_above_at_a_million_sends_is_quick_and_sure() -> None:
    assert chance_above((50_001, 950_001), (50_201, 949_801)) == pytest.approx(0.2584, abs=1e-4)
    assert chance_above((60_001, 940_001), (50_001, 950_001)) == pytest.approx(1.0, abs=1e-12)


def test_which_of_three_is_largest_agrees_with_sampling() -> None:
    params = [(31, 971), (46, 956), (61, 941)]
    rng, draws = random.Random(7), 60_000
    counts = [0, 0, 0]
    for _ in range(draws):
        values = [rng.betavariate(a, b) for a, b in params]
        counts[values.index(max(values))] += 1
    for chance, count in zip(chance_largest(params), counts, strict=True):
        assert chance == pytest.approx(count / draws, abs=0.006)  # 3 sd of 60,000 draws
    assert all(isclose(c, 1 / 3, abs_tol=1e-6) for c in chance_largest([(5, 50)] * 3))
    assert sum(chance_largest([(2, 90), (12, 1000), (1, 3), (40, 40)])) == pytest.approx(1)
