#!/usr/bin/env python3
"""Draws the cost curves of issue 18 (item 5) as SVG, by hand (no plotting library needed).

Reads docs/plots/cost-curve-<name>.json, written by hand from the runs' output: {"title": ...,
"x_label": ..., "panels": [{"title", "y_label", "y_log", "series": [{"name", "points": [[x, y],
...], "dashed"}]}]} and writes docs/plots/cost-curve-<name>.svg: one panel per metric, a log x
axis, one line per series (rounds, modes). Not run in CI.
Usage: scripts/plot-cost-curves.py [NAME...]   (default: every docs/plots/cost-curve-*.json)
"""
import glob
import json
import math
import os
import sys
from html import escape

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
PANEL_W, PANEL_H, COLS = 440, 300, 2
LEFT, RIGHT, TOP, BOTTOM = 62, 16, 34, 48


def nice_ticks(lo, hi, log):
    if log:
        return [10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    step = 10 ** math.floor(math.log10((hi - lo) or 1))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= 6:
            step *= m
            break
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 2) if first + i * step <= hi + step]


def label(v):
    if v >= 1e6 and v % 1e6 == 0:
        return f"{v / 1e6:g}M"
    if v >= 1e3 and v % 1e3 == 0:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def panel(p, x_label, ox, oy):
    pts = [pt for s in p["series"] for pt in s["points"] if pt[1] is not None]
    xs, ys = [pt[0] for pt in pts], [pt[1] for pt in pts]
    y_log = p.get("y_log", False)
    xt = nice_ticks(min(xs), max(xs), True)
    if y_log:
        yt = nice_ticks(max(min(ys), 1e-3), max(ys), True)
    else:
        yt = nice_ticks(0, max(ys) * 1.08 or 1, False)
    w, h = PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM
    fx = lambda x: ox + LEFT + (math.log10(x) - math.log10(xt[0])) / (math.log10(xt[-1]) - math.log10(xt[0])) * w
    if y_log:
        fy = lambda y: oy + TOP + h - (math.log10(y) - math.log10(yt[0])) / (math.log10(yt[-1]) - math.log10(yt[0])) * h
    else:
        fy = lambda y: oy + TOP + h - (y - yt[0]) / (yt[-1] - yt[0]) * h
    out = [f'<text x="{ox + PANEL_W / 2}" y="{oy + 20}" text-anchor="middle" font-weight="bold">{escape(p["title"])}</text>',
           f'<rect x="{ox + LEFT}" y="{oy + TOP}" width="{w}" height="{h}" fill="none" stroke="#999"/>']
    for t in xt:
        out.append(f'<line x1="{fx(t):.1f}" y1="{oy + TOP}" x2="{fx(t):.1f}" y2="{oy + TOP + h}" stroke="#eee"/>')
        out.append(f'<text x="{fx(t):.1f}" y="{oy + TOP + h + 15}" text-anchor="middle">{label(t)}</text>')
    for t in yt:
        out.append(f'<line x1="{ox + LEFT}" y1="{fy(t):.1f}" x2="{ox + LEFT + w}" y2="{fy(t):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{ox + LEFT - 5}" y="{fy(t) + 4:.1f}" text-anchor="end">{label(round(t, 6))}</text>')
    out.append(f'<text x="{ox + LEFT + w / 2}" y="{oy + PANEL_H - 12}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text transform="translate({ox + 14},{oy + TOP + h / 2}) rotate(-90)" text-anchor="middle">'
               f'{escape(p["y_label"])}</text>')
    for i, s in enumerate(p["series"]):
        color = COLORS[i % len(COLORS)]
        line = [(fx(x), fy(y)) for x, y in s["points"] if y is not None and (y > 0 or not y_log)]
        dash = ' stroke-dasharray="6,4"' if s.get("dashed") else ""
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="'
                   + " ".join(f"{x:.1f},{y:.1f}" for x, y in line) + '"/>')
        for x, y in line:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
        ly = oy + TOP + 14 + i * 15
        out.append(f'<line x1="{ox + LEFT + 8}" y1="{ly - 4}" x2="{ox + LEFT + 26}" y2="{ly - 4}" stroke="{color}" '
                   f'stroke-width="2"{dash}/><text x="{ox + LEFT + 30}" y="{ly}">{escape(s["name"])}</text>')
    return out


def draw(path):
    spec = json.load(open(path))
    panels = spec["panels"]
    rows = (len(panels) + COLS - 1) // COLS
    width, height = PANEL_W * COLS, PANEL_H * rows + 30
    body = [f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">'
            f'{escape(spec["title"])}</text>']
    for i, p in enumerate(panels):
        body += panel(p, spec["x_label"], (i % COLS) * PANEL_W, 30 + (i // COLS) * PANEL_H)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">\n'
           f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n")
    out = os.path.splitext(path)[0] + ".svg"
    open(out, "w").write(svg)
    print("wrote", out)


if __name__ == "__main__":
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "plots")
    names = sys.argv[1:] or [os.path.basename(p)[len("cost-curve-"):-5] for p in
                             sorted(glob.glob(os.path.join(root, "cost-curve-*.json")))]
    for name in names:
        draw(os.path.join(root, f"cost-curve-{name}.json"))
