"""Two small hand-written SVG charts for docs/BENCHMARKS.md (bench/report.py draws them):
an empirical CDF on a log x axis, and series of (x, y) points. Standard library only.
"""
import math
from xml.sax.saxutils import escape

W, H = 760, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 230, 36, 48
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
FONT = 'font-family="sans-serif" font-size="12"'


def _frame(title, xlabel, ylabel):
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-family="sans-serif" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>',
        f'<text x="{LEFT + pw / 2}" y="{H - 10}" {FONT} text-anchor="middle">{escape(xlabel)}</text>',
        f'<text x="16" y="{TOP + ph / 2}" {FONT} text-anchor="middle" '
        f'transform="rotate(-90 16 {TOP + ph / 2})">{escape(ylabel)}</text>',
    ], pw, ph


def _legend(labels, extra=None):
    out = []
    for i, label in enumerate(labels):
        y = TOP + 12 + 20 * i
        c = COLORS[i % len(COLORS)]
        out.append(f'<line x1="{W - RIGHT + 12}" y1="{y}" x2="{W - RIGHT + 36}" y2="{y}" stroke="{c}" stroke-width="2.5"/>')
        out.append(f'<text x="{W - RIGHT + 42}" y="{y + 4}" {FONT}>{escape(label)}</text>')
    if extra:
        y = TOP + 12 + 20 * len(labels)
        out.append(f'<line x1="{W - RIGHT + 12}" y1="{y}" x2="{W - RIGHT + 36}" y2="{y}" stroke="#888" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{W - RIGHT + 42}" y="{y + 4}" {FONT}>{escape(extra)}</text>')
    return out


def _nice_step(span, ticks=6):
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def _num(v):
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.0e}"


def cdf_plot(title, xlabel, series):
    """series: [(label, [values > 0])]; x on a log scale, y = share of samples at or below x."""
    svg, pw, ph = _frame(title, xlabel, "share of segments ≤ x")
    vals = [max(v, 0.5) for _, vs in series for v in vs]
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals) * 1.01))
    x = lambda v: LEFT + pw * (math.log10(max(v, 0.5)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    y = lambda f: TOP + ph * (1 - f)
    d = lo
    while d <= hi * 1.0001:
        svg.append(f'<line x1="{x(d):.1f}" y1="{TOP}" x2="{x(d):.1f}" y2="{TOP + ph}" stroke="#ddd"/>')
        svg.append(f'<text x="{x(d):.1f}" y="{TOP + ph + 16}" {FONT} text-anchor="middle">{_num(d)}</text>')
        d *= 10
    for f in (0, 0.25, 0.5, 0.75, 1):
        svg.append(f'<line x1="{LEFT}" y1="{y(f):.1f}" x2="{LEFT + pw}" y2="{y(f):.1f}" stroke="#eee"/>')
        svg.append(f'<text x="{LEFT - 6}" y="{y(f) + 4:.1f}" {FONT} text-anchor="end">{f:g}</text>')
    for i, (_, vs) in enumerate(series):
        v = sorted(vs)
        pts = [(x(v[0]), y(0))]
        for k, s in enumerate(v):
            pts += [(x(s), y(k / len(v))), (x(s), y((k + 1) / len(v)))]
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        svg.append(f'<polyline points="{path}" fill="none" stroke="{COLORS[i % len(COLORS)]}" stroke-width="2"/>')
    svg += _legend([f"{label} (n={len(vs)})" for label, vs in series])
    return "\n".join(svg + ["</svg>"]) + "\n"


def series_plot(title, xlabel, ylabel, series, hline=None):
    """series: [(label, [(x, y)])]; linear axes from 0; an optional dashed (y, label) line."""
    svg, pw, ph = _frame(title, xlabel, ylabel)
    xs = [p[0] for _, ps in series for p in ps]
    ys = [p[1] for _, ps in series for p in ps] + ([hline[0]] if hline else [])
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    ystep = _nice_step(max(ys) * 1.05)
    y1 = ystep * math.ceil(max(ys) * 1.05 / ystep)
    x = lambda v: LEFT + pw * (v - x0) / (x1 - x0)
    y = lambda v: TOP + ph * (1 - v / y1)
    t = 0.0
    while t <= y1 + 1e-9:
        svg.append(f'<line x1="{LEFT}" y1="{y(t):.1f}" x2="{LEFT + pw}" y2="{y(t):.1f}" stroke="#eee"/>')
        svg.append(f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" {FONT} text-anchor="end">{_num(t)}</text>')
        t += ystep
    xstep = _nice_step(x1 - x0)
    t = xstep * math.ceil(x0 / xstep)
    while t <= x1 + 1e-9:
        svg.append(f'<text x="{x(t):.1f}" y="{TOP + ph + 16}" {FONT} text-anchor="middle">{_num(t)}</text>')
        t += xstep
    if hline:
        svg.append(f'<line x1="{LEFT}" y1="{y(hline[0]):.1f}" x2="{LEFT + pw}" y2="{y(hline[0]):.1f}" '
                   f'stroke="#888" stroke-dasharray="4 3"/>')
    for i, (_, ps) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        path = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in ps)
        svg.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="1.5" stroke-opacity="0.8"/>')
        svg += [f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="2" fill="{c}"/>' for a, b in ps]
    svg += _legend([label for label, _ in series], hline[1] if hline else None)
    return "\n".join(svg + ["</svg>"]) + "\n"
