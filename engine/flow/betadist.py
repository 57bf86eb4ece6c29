"""The Beta distribution without scipy: density, CDF, quantiles, and which of several is largest.

An experiment's belief about a variant's click (or purchase) rate after `s` successes in
`n` sends is Beta(1 + s, 1 + n - s): the uniform prior updated by the counts. Its
parameters are therefore always at least 1, so every density here is bounded and
log-concave; the functions rely on that and accept only `a, b >= 1`.

The CDF is the regularized incomplete beta I_x(a, b), evaluated by its continued
fraction (modified Lentz, as Numerical Recipes' `betacf`); a quantile inverts it by
Newton steps kept inside a bisection bracket, to 1e-12.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import exp, lgamma, log, log1p, pi, sqrt

_TINY = 1e-300  # Lentz's guard against dividing by zero
_EPS = 1e-15  # the continued fraction stops when a step changes it by less than this
_MAX_TERMS = 100_000  # it needs about sqrt(max(a, b)) terms: 1,000 at a million sends
_QUANTILE_TOL = 1e-12
_WINDOW_SDS = 16  # a log-concave density keeps under 1e-6 of its mass beyond 16 sd
_HALF_LOG_2PI = 0.5 * log(2.0 * pi)
_POINTS = 128  # grid points per distribution for three or more: 1/4 sd apart


def log_beta(a: float, b: float) -> float:
    """log B(a, b), the Beta function's logarithm."""
    return lgamma(a) + lgamma(b) - lgamma(a + b)


def density(x: float, a: float, b: float) -> float:
    """The Beta(a, b) density at x."""
    if x <= 0.0:  # a, b >= 1: the density at an end is finite, and 0 unless that side's parameter is 1
        return exp(-log_beta(a, b)) if a == 1.0 else 0.0
    if x >= 1.0:
        return exp(-log_beta(a, b)) if b == 1.0 else 0.0
    return exp(_log_front(x, a, b) - log(x) - log1p(-x))


def cdf(x: float, a: float, b: float) -> float:
    """P(X <= x) for X ~ Beta(a, b): the regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = exp(_log_front(x, a, b))
    # The fraction converges fast below the mean and slowly above it; above, use
    # I_x(a, b) = 1 - I_{1-x}(b, a).
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _fraction(a, b, x) / a
    return 1.0 - front * _fraction(b, a, 1.0 - x) / b


def _log_front(x: float, a: float, b: float) -> float:
    """log(x^a (1 - x)^b / B(a, b)), the factor in front of the continued fraction.

    Written out directly, three terms of about a million (at a million sends) cancel to a
    few units and leave 1e-10 of rounding; past 10, Stirling's series for B(a, b) and
    log(1 + t) - t (`_log1pmx`) keep it to about 1e-13 (as TOMS 708's `brcomp` does).
    """
    shift = x * (a + b) - a  # how far a sits from where x would put it
    if min(a, b) < 10.0 or abs(shift) > 0.5 * min(a, b):  # far out, the rounding is no matter
        return a * log(x) + b * log1p(-x) - log_beta(a, b)
    return (
        a * _log1pmx(shift / a) + b * _log1pmx(-shift / b)
        + 0.5 * log(a * b / (a + b)) - _HALF_LOG_2PI
        - (_stirling(a) + _stirling(b) - _stirling(a + b))
    )


def _log1pmx(t: float) -> float:
    """log(1 + t) - t, without the cancellation near 0."""
    if abs(t) > 0.1:
        return log1p(t) - t
    total, power = 0.0, t * t
    for k in range(2, 20):  # -t^2/2 + t^3/3 - ...: at |t| <= 0.1 the 19th term is under 1e-19
        total += -power / k if k % 2 == 0 else power / k
        power *= t
    return total


def _stirling(z: float) -> float:
    """lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2), for z >= 10 (error under 1e-16)."""
    w = 1.0 / (z * z)
    return (1.0 / 12.0 - w * (1.0 / 360.0 - w * (1.0 / 1260.0 - w / 1680.0))) / z


def _fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes' `betacf`, modified Lentz)."""
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_TERMS):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((a - 1.0 + m2) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"the incomplete beta did not converge for a={a}, b={b}, x={x}")


def quantile(q: float, a: float, b: float) -> float:
    """The x with P(X <= x) = q for X ~ Beta(a, b), to 1e-12."""
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    low, high = 0.0, 1.0
    x = a / (a + b)
    for _ in range(200):
        gap = cdf(x, a, b) - q
        if gap == 0.0:
            return x
        if gap < 0.0:
            low = x
        else:
            high = x
        slope = density(x, a, b)
        step = x - gap / slope if slope > 0.0 else low - 1.0
        if not low < step < high:  # Newton left the bracket: halve it instead
            step = (low + high) / 2.0
        if abs(step - x) < _QUANTILE_TOL or high - low < _QUANTILE_TOL:
            return step
        x = step
    return x


def chance_largest(params: Sequence[tuple[int, int]]) -> list[float]:
    """For independent Beta(a_i, b_i) with whole-number parameters: P(each one is the largest).

    Two: exactly (`chance_above`). Three or more: by integration (`chance_largest_at`),
    scaled to add up to 1. Deterministic, so two reports of the same counts read the same.
    """
    if len(params) == 1:
        return [1.0]
    if len(params) == 2:
        above = chance_above(params[1], params[0])
        return [1.0 - above, above]
    chances = [chance_largest_at(params, i) for i in range(len(params))]
    total = sum(chances)
    return [c / total for c in chances]


def chance_above(first: tuple[int, int], second: tuple[int, int]) -> float:
    """P(X > Y) for independent X ~ Beta(first), Y ~ Beta(second), whole-number a's, exactly.

    The finite sum P = sum over i < a_X of B(a_Y + i, b_Y + b_X) / ((b_X + i) B(1 + i, b_X)
    B(a_Y, b_Y)) (as in Evan Miller's "Formulas for Bayesian A/B testing"), its terms summed
    outward from the largest until the rest cannot matter.
    """
    (a_x, b_x), (a_y, b_y) = first, second
    if a_y < a_x:  # fewer terms the other way round
        return 1.0 - chance_above(second, first)

    def ratio(i: int) -> float:  # term i + 1 over term i
        return (a_y + i) * (b_x + i) / ((a_y + b_y + b_x + i) * (i + 1.0))

    last = a_x - 1
    peak = min(last, max(0, int((a_y * b_x - a_y - b_y - b_x) / (b_y + 1.0))))
    log_peak = (
        log_beta(a_y + peak, b_y + b_x) - log(b_x + peak)
        - log_beta(1 + peak, b_x) - log_beta(a_y, b_y)
    )
    total = 1.0
    term, i = 1.0, peak
    while i < last:
        term *= ratio(i)
        i += 1
        total += term
        if term * (last - i) < total * 1e-17:
            break
    term, i = 1.0, peak
    while i > 0:
        i -= 1
        term /= ratio(i)
        total += term
        if term * i < total * 1e-17:
            break
    return min(1.0, exp(log_peak + log(total)))


def chance_largest_at(params: Sequence[tuple[int, int]], i: int) -> float:
    """P(Beta(params[i]) is the largest) for three or more, by integration over its mass.

    The integral of f_i times the others' CDFs runs over params[i]'s 16 sd either side,
    on 128 points there plus the points of every narrower distribution that fall inside; each
    other CDF starts from its exact value at the first point and adds the integral of its
    density. Every integral uses the values and slopes at both ends of a step (exact for
    cubics), so a 1/4-sd step is accurate to about 1e-7.
    """
    mine = _window(*params[i])
    low, high = mine[0], mine[-1]
    narrower = [p for p in params if _sd(*p) < _sd(*params[i])]  # their CDFs need finer steps
    grid = sorted({*mine, *(x for a, b in narrower for x in _window(a, b) if low <= x <= high)})
    logs = [(log(x), log1p(-x)) for x in grid]
    f_i, df_i = _density_and_slope(grid, logs, *params[i])
    product = [1.0] * len(grid)  # the others' CDFs multiplied
    spread = [0.0] * len(grid)  # its derivative
    for j, (a, b) in enumerate(params):
        if j == i:
            continue
        f, df = _density_and_slope(grid, logs, a, b)
        big_f = cdf(grid[0], a, b)
        for m in range(len(grid)):
            if m:
                big_f = min(1.0, big_f + _piece(grid[m] - grid[m - 1], f[m - 1], f[m], df[m - 1], df[m]))
            spread[m] = spread[m] * big_f + product[m] * f[m]
            product[m] *= big_f
    g = [fx * px for fx, px in zip(f_i, product, strict=True)]
    dg = [d * px + fx * sx for fx, d, px, sx in zip(f_i, df_i, product, spread, strict=True)]
    return sum(
        _piece(grid[m + 1] - grid[m], g[m], g[m + 1], dg[m], dg[m + 1]) for m in range(len(grid) - 1)
    )


def _window(a: int, b: int) -> list[float]:
    """The grid over Beta(a, b)'s mass: 16 sd either side of the mean, inside (0, 1)."""
    mean, sd = a / (a + b), _sd(a, b)
    low = max(1e-12, mean - _WINDOW_SDS * sd)
    high = min(1.0 - 1e-12, mean + _WINDOW_SDS * sd)
    return [low + (high - low) * m / _POINTS for m in range(_POINTS + 1)]


def _sd(a: int, b: int) -> float:
    """Beta(a, b)'s standard deviation."""
    return sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))


def _density_and_slope(
    grid: Sequence[float], logs: Sequence[tuple[float, float]], a: int, b: int
) -> tuple[list[float], list[float]]:
    """Beta(a, b)'s density and its derivative at each grid point (`logs`: log x, log(1 - x))."""
    norm = log_beta(a, b)
    f = [exp((a - 1.0) * lx + (b - 1.0) * l1x - norm) for lx, l1x in logs]
    return f, [fx * ((a - 1.0) / x - (b - 1.0) / (1.0 - x)) for x, fx in zip(grid, f, strict=True)]


def _piece(h: float, y0: float, y1: float, d0: float, d1: float) -> float:
    """The integral over one step of the cubic through both ends' values and slopes."""
    return h * (y0 + y1) / 2.0 + h * h * (d0 - d1) / 12.0
