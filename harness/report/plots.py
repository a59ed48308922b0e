"""The plots of a run's report, drawn with matplotlib and returned as SVG text.

Each `*_figure` function takes the plain data of `harness.report.data` and returns a matplotlib
`Figure` (or None when there is nothing to draw), to be called within `drawing()`; `svg` turns
a figure into an `<svg>` element fit to inline in a page, and `render` does all of it at once.
Figures are made with the object API (`matplotlib.figure.Figure`), never pyplot: no display,
no backend chosen for the whole process, nothing kept between calls; PNG output (for a person
looking at one plot) goes through Agg.

Time runs along x in seconds on the history's clock; faults are drawn behind the data as
shaded bands, one colour per fault kind.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import threading
from collections import defaultdict
from typing import Any, Callable, Iterable, Iterator

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.report.data import FaultBand, ReportOp, RunData, Violation

NS = 1e9
OUTCOME_COLOURS = {"ok": "#2b8a3e", "fail": "#d6336c", "info": "#f59f00"}
# Light fills for the timeline's bars; the strong colours above are for points and lines.
OUTCOME_FILLS = {"ok": "#b2f2bb", "fail": "#fcc2d7", "info": "#ffe8a1"}
MARKERS = {"read": "o", "write": "s", "cas": "D", "add": "^", "append": "v"}
OTHER_MARKERS = ("P", "X", "*", "h", "<", ">")
# Fault kinds in cool tones, so that bands never read as an outcome's colour.
FAULT_COLOURS = {"partition": "#4dabf7", "kill": "#868e96", "pause": "#9775fa",
                 "clock": "#63e6be", "latency": "#74c0fc", "power-loss": "#495057",
                 "election-crash": "#5c7cfa", "bitflip": "#e599f7", "truncate": "#ced4da"}
OTHER_FAULT_COLOURS = ("#a5d8ff", "#d0bfff", "#96f2d7", "#dee2e6")
BAND_ALPHA = 0.22
ROLE_COLOURS = {"leader": "#e8590c", "candidate": "#ffd43b", "follower": "#c0eb75"}
OTHER_ROLE_COLOUR = "#dee2e6"
# Faults that take a node down or stop it: drawn over that node's lane in the roles plot,
# where the last role it reported would otherwise seem to go on.
NODE_DOWN_KINDS = {"kill": "down", "power-loss": "down", "bitflip": "down",
                   "truncate": "down", "election-crash": "down", "pause": "paused"}
PRIMARY_EDGE = "#c92a2a"
RELATED_EDGE = "#1864ab"
WIDTH = 11.0                     # inches; at 100 dpi about the width of a page's column
DPI = 100
TIMELINE_LANES_MAX = 40          # lanes beyond this are left out, and said
# matplotlib's rc settings are process-wide; two reports built at once (parallel runs) must
# not see each other's. Reentrant: drawing and saving nest.
_RENDER_LOCK = threading.RLock()
_RC = {"svg.fonttype": "none",        # text stays text: searchable, small, selectable
       "font.size": 9, "axes.titlesize": 10, "axes.titleweight": "bold",
       "axes.spines.top": False, "axes.spines.right": False}


@contextlib.contextmanager
def drawing() -> Iterator[None]:
    """The report's matplotlib settings, held while figures are made and saved (artists read
    them when they are created, the SVG writer when it writes)."""
    with _RENDER_LOCK, matplotlib.rc_context(_RC):
        yield


def render(data: RunData, violation: Violation | None) -> dict[str, str | None]:
    """Every plot of the report as SVG text, by name ("latency", "throughput", "timeline",
    "roles"); None for a plot with nothing to draw."""
    makers: dict[str, Callable[[], Figure | None]] = {
        "latency": lambda: latency_figure(data),
        "throughput": lambda: throughput_figure(data),
        "timeline": lambda: timeline_figure(data, violation) if violation else None,
        "roles": lambda: roles_figure(data)}
    drawn: dict[str, str | None] = {}
    with drawing():
        for name, make in makers.items():
            figure = make()
            drawn[name] = svg(figure, name) if figure is not None else None
    return drawn


def svg(figure: Figure, name: str) -> str:
    """`figure` as an `<svg>` element (no XML prolog), its ids prefixed by `name` so that
    several plots inlined in one page never share an id (matplotlib numbers them alike)."""
    buffer = io.StringIO()
    with drawing(), matplotlib.rc_context({"svg.hashsalt": name}):
        figure.savefig(buffer, format="svg", dpi=DPI)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    # matplotlib's own ids ("figure_1", "patch_2", "axes_1") repeat from figure to figure.
    return re.sub(r'(id="|url\(#|xlink:href="#|href="#)([A-Za-z_][\w.-]*)',
                  lambda m: f"{m.group(1)}{name}-{m.group(2)}", text)


def png(figure: Figure) -> bytes:
    """`figure` as PNG bytes (Agg), for looking at one plot alone."""
    buffer = io.BytesIO()
    with drawing():
        figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _figure(height: float) -> Figure:
    return Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")


def _axes(figure: Figure):
    return figure.add_subplot()


def _seconds(ns: int | float) -> float:
    return ns / NS


def _fault_colour(kind: str, others: dict[str, str]) -> str:
    if kind in FAULT_COLOURS:
        return FAULT_COLOURS[kind]
    if kind not in others:
        others[kind] = OTHER_FAULT_COLOURS[len(others) % len(OTHER_FAULT_COLOURS)]
    return others[kind]


def shade_faults(ax, bands: Iterable[FaultBand], end: int,
                 window: tuple[int, int] | None = None) -> list[Patch]:
    """Shade each fault band on `ax` (an open band runs to `end`); returns one legend handle
    per kind shown."""
    handles: dict[str, Patch] = {}
    others: dict[str, str] = {}
    for band in bands:
        start, stop = band.start, band.end if band.end is not None else end
        if window is not None:
            start, stop = max(start, window[0]), min(stop, window[1])
            if start >= stop:
                continue
        colour = _fault_colour(band.kind, others)
        ax.axvspan(_seconds(start), _seconds(stop), color=colour, alpha=BAND_ALPHA, lw=0,
                   zorder=0)
        handles.setdefault(band.kind, Patch(color=colour, alpha=BAND_ALPHA + 0.15,
                                            label=f"fault: {band.kind}"))
    return list(handles.values())


def _markers(fs: Iterable[str]) -> dict[str, str]:
    chosen = {}
    spare = iter(OTHER_MARKERS * 4)
    for f in sorted(set(fs)):
        chosen[f] = MARKERS.get(f) or next(spare, "o")
    return chosen


def latency_figure(data: RunData) -> Figure | None:
    """Each completed operation as a point at its invocation: its latency (log scale), its
    kind by marker, its outcome by colour (`info`: until its client gave up); faults as
    bands. None when no operation completed."""
    groups: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(
        lambda: ([], []))
    for op in data.ops:
        if op.done is None:
            continue
        xs, ys = groups[(op.f, op.outcome)]
        xs.append(op.call / NS)
        # A zero latency (a coarse clock) has no place on a log scale: a microsecond instead.
        ys.append(max(op.done - op.call, 1000) / 1e6)
    if not groups:
        return None
    figure = _figure(4.2)
    ax = _axes(figure)
    handles = shade_faults(ax, data.bands, data.end)
    markers = _markers(f for f, _ in groups)
    for (f, outcome), (xs, ys) in sorted(groups.items()):
        # Thousands of points: rasterised inside the SVG, axes and text stay vector.
        ax.plot(xs, ys, linestyle="none", marker=markers[f], markersize=2.6,
                markeredgewidth=0, alpha=0.55, color=OUTCOME_COLOURS.get(outcome, "#495057"),
                rasterized=True, zorder=2)
    ax.set_yscale("log")
    ax.set_xlim(0, max(_seconds(data.end), 1e-3))
    ax.set_xlabel("time since the run started (s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("latency of each operation, at its invocation")
    ax.grid(True, which="major", axis="y", color="#e9ecef", lw=0.6)
    legend = [Line2D([], [], linestyle="none", marker=markers[f], color="#495057",
                     label=f) for f in markers]
    legend += [Line2D([], [], linestyle="none", marker="o", color=OUTCOME_COLOURS[o],
                      label=o) for o in OUTCOME_COLOURS if any(k[1] == o for k in groups)]
    ax.legend(handles=legend + handles, loc="upper left", bbox_to_anchor=(1.0, 1.0),
              frameon=False, fontsize=8)
    return figure


def throughput_figure(data: RunData) -> Figure | None:
    """Completions per second over time, by outcome, in buckets of a round width (a second
    for runs of half a minute to two minutes); faults as bands. None when nothing
    completed."""
    done = [(op.done, op.outcome) for op in data.ops if op.done is not None]
    if not done:
        return None
    span = max(_seconds(data.end), 1e-3)
    width = bucket_width(span)
    # The last bucket ends with the run, and takes in a remainder shorter than half a
    # bucket (a sliver's rate would be noise): rates are over the time each bucket covers.
    count = max(1, math.ceil(span / width - 0.5))
    series = {outcome: [0] * count for outcome in OUTCOME_COLOURS}
    for time, outcome in done:
        series.setdefault(outcome, [0] * count)[min(int(time / NS / width), count - 1)] += 1
    figure = _figure(3.2)
    ax = _axes(figure)
    handles = shade_faults(ax, data.bands, data.end)
    xs = [i * width for i in range(count)] + [span]
    spans = [b - a for a, b in zip(xs, xs[1:])]
    for outcome, counts in series.items():
        if not any(counts):
            continue
        rates = [c / d for c, d in zip(counts, spans)]
        ax.stairs(rates, xs, color=OUTCOME_COLOURS.get(outcome, "#495057"), lw=1.4,
                  label=outcome, zorder=2)
    ax.set_xlim(0, span)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time since the run started (s)")
    ax.set_ylabel(f"completions / s ({width:g} s buckets)")
    ax.set_title("throughput, by outcome")
    ax.grid(True, axis="y", color="#e9ecef", lw=0.6)
    line_handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=line_handles + handles, loc="upper left", bbox_to_anchor=(1.0, 1.0),
              frameon=False, fontsize=8)
    return figure


NICE_WIDTHS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600)


def bucket_width(span: float) -> float:
    """A round bucket width for `span` seconds: at most 120 buckets, and at least 24 for a
    run shorter than 24 s (a second's bucket would leave a short run a few bars)."""
    wanted = max(span / 120, min(1.0, span / 24))
    return next((w for w in NICE_WIDTHS if w >= wanted), NICE_WIDTHS[-1])


def short_label(op: ReportOp) -> str:
    """A few characters for a timeline bar: "w 3", "r 3", "cas 1>2", "add 7"."""
    if op.f in ("read", "get", "r"):
        shown = _short(op.result) if op.outcome == "ok" else "?"
        return f"r {shown}"
    name = {"write": "w"}.get(op.f, op.f)
    if op.f == "cas" and isinstance(op.value, list) and len(op.value) == 2:
        return f"cas {_short(op.value[0])}>{_short(op.value[1])}"
    return f"{name} {_short(op.value)}"


def _short(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, list):
        return f"[{len(value)}]"
    text = str(value)
    return text if len(text) <= 8 else text[:7] + "~"


def lanes(ops: list[ReportOp], end: int) -> list[list[Any]]:
    """Processes packed into lanes: a process takes the first lane free since its last
    process's operations ended. A client whose operation ends `info` carries on as a fresh
    process; packing puts it back on its predecessor's lane, so the lanes are about as many as
    the clients, as in Porcupine's one lane per client."""
    extent: dict[Any, list[int]] = {}
    for op in ops:
        stop = op.done if op.done is not None else end
        if op.process in extent:
            extent[op.process][1] = max(extent[op.process][1], stop)
        else:
            extent[op.process] = [op.call, stop]
    packed: list[list[Any]] = []
    free_at: list[int] = []
    for process, (start, stop) in sorted(extent.items(), key=lambda kv: kv[1][0]):
        for lane, free in enumerate(free_at):
            if free < start:
                packed[lane].append(process)
                free_at[lane] = stop
                break
        else:
            packed.append([process])
            free_at.append(stop)
    return packed


def timeline_figure(data: RunData, violation: Violation) -> Figure | None:
    """The operations around the first violation, one bar each from invocation to completion
    on its client's lane (an `info` one ends in an arrow: it may take effect any time later);
    the violating operation outlined in red, those named with it in blue, the model's state
    before it in the title; faults as bands. None when the window holds no operation."""
    ops = violation.timeline_ops(data)
    if not ops:
        return None
    start, end = violation.window
    packed = lanes(ops, end)
    shown_lanes = packed[:TIMELINE_LANES_MAX]
    lane_of = {p: i for i, lane in enumerate(shown_lanes) for p in lane}
    primary = {op.index for op in violation.primary}
    related = {op.index for op in violation.related}
    figure = _figure(1.8 + 0.42 * len(shown_lanes))
    ax = _axes(figure)
    handles = shade_faults(ax, data.bands, data.end, window=violation.window)
    x0, x1 = _seconds(start), _seconds(end)
    per_inch = (x1 - x0) / (WIDTH * 0.8)
    labelled_to: dict[int, float] = {}        # lane -> where its last label above ends
    for op in ops:
        if op.process not in lane_of:
            continue
        y = lane_of[op.process]
        left = max(op.call, start)
        stop = op.done if op.done is not None else end
        right = min(stop, end)
        edge, lw, colour = "#495057", 0.5, "#212529"
        if op.index in primary:
            edge, lw, colour = PRIMARY_EDGE, 2.4, PRIMARY_EDGE
        elif op.index in related:
            edge, lw, colour = RELATED_EDGE, 2.0, RELATED_EDGE
        width = max(_seconds(right - left), per_inch * 0.02)
        ax.barh(y, width, left=_seconds(left), height=0.56,
                color=OUTCOME_FILLS.get(op.outcome, "#e9ecef"), edgecolor=edge, linewidth=lw,
                zorder=3 if lw > 1 else 2)
        if op.outcome == "info" and stop <= end:
            ax.plot([_seconds(right)], [y], marker=">", markersize=4, linestyle="none",
                    color=OUTCOME_COLOURS["info"], zorder=3)
        label = short_label(op)
        # Inside the bar where it fits (about 0.075 in a character at this size); the
        # operations of the violation always get theirs, above the bar.
        if width / per_inch >= 0.075 * len(label) + 0.05:
            ax.text(_seconds(left) + per_inch * 0.03, y, label, va="center", ha="left",
                    fontsize=7, zorder=4, clip_on=True, color=colour,
                    fontweight="bold" if lw > 1 else "normal")
        elif lw > 1 and (op.index in primary or _seconds(left) - per_inch * 0.035 *
                         len(label) > labelled_to.get(y, float("-inf"))):
            # Above the bar, unless it would run into the label before it (many lost
            # elements added within a few milliseconds).
            labelled_to[y] = _seconds(left) + per_inch * 0.035 * len(label)
            ax.text(_seconds(left), y - 0.3, label, va="bottom", ha="center", fontsize=7,
                    zorder=5, clip_on=True, color=colour, fontweight="bold",
                    bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none",
                          "alpha": 0.8})
    if violation.at is not None:
        ax.axvline(_seconds(violation.at), color=PRIMARY_EDGE, lw=1, linestyle="--")
    ax.set_yticks(range(len(shown_lanes)),
                  [_lane_name(lane) for lane in shown_lanes], fontsize=7)
    ax.set_ylim(len(shown_lanes) - 0.5, -0.75)        # first lane on top
    ax.set_xlim(x0, x1)
    ax.set_xlabel("time since the run started (s)")
    ax.set_ylabel("clients (the processes each lane held)")
    key = "" if violation.key is None else f" on key {violation.key}"
    more = len(packed) - len(shown_lanes)
    title = f"operations{key} around the first violation ({violation.checker})"
    if more > 0:
        title += f"; {more} more lane(s) not shown"
    if violation.primary:
        op = violation.primary[0]
        title += f"\nviolating: p{op.process} {short_label(op)} at {_seconds(op.call):.3f} s"
        if violation.state_before is not None:
            title += f"; model state before it: {_clip(violation.state_before, 60)}"
    ax.set_title(title)
    legend = [Patch(facecolor=OUTCOME_FILLS[o], edgecolor="#495057", lw=0.5, label=o)
              for o in OUTCOME_FILLS if any(op.outcome == o for op in ops)]
    if any(op.outcome == "info" for op in ops):
        legend.append(Line2D([], [], marker=">", linestyle="none", markersize=4,
                             color=OUTCOME_COLOURS["info"], label="info: may take effect later"))
    legend.append(Patch(facecolor="white", edgecolor=PRIMARY_EDGE, lw=2, label="violating"))
    if related:
        legend.append(Patch(facecolor="white", edgecolor=RELATED_EDGE, lw=2,
                            label="named with it"))
    ax.legend(handles=legend + handles, loc="upper left", bbox_to_anchor=(1.0, 1.0),
              frameon=False, fontsize=8)
    return figure


def _lane_name(processes: list[Any]) -> str:
    names = [str(p) for p in processes]
    text = "p" + ",".join(names[:3])
    return text + (f" +{len(names) - 3}" if len(names) > 3 else "")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def roles_figure(data: RunData) -> Figure | None:
    """One lane per node, coloured by the role it reported from each change to the next,
    with a mark where a node became leader (its term beside it); the spells a node fault kept
    a node down or paused hatched over its lane; faults as bands. None without observations."""
    if not data.roles:
        return None
    nodes = data.nodes or sorted({span.node for span in data.roles})
    row = {node: i for i, node in enumerate(nodes)}
    figure = _figure(1.3 + 0.45 * len(nodes))
    ax = _axes(figure)
    handles = shade_faults(ax, data.bands, data.end)
    seen_roles: dict[str, str] = {}
    for span in data.roles:
        colour = ROLE_COLOURS.get(span.role, OTHER_ROLE_COLOUR)
        seen_roles.setdefault(span.role, colour)
        ax.broken_barh([(_seconds(span.start), _seconds(span.end - span.start))],
                       (row[span.node] - 0.3, 0.6), facecolors=colour, zorder=2)
        if span.role == "leader":
            ax.plot([_seconds(span.start)], [row[span.node] - 0.38], marker="v",
                    color=ROLE_COLOURS["leader"], markersize=5, zorder=4)
            ax.text(_seconds(span.start), row[span.node] - 0.42, f"t{span.term}",
                    fontsize=6.5, ha="center", va="bottom", color="#862e0c", zorder=4)
    downs: set[str] = set()
    for band in data.bands:
        what = NODE_DOWN_KINDS.get(band.kind)
        hit = band.value.get("nodes") or band.value.get("down") or []
        if what is None or not isinstance(hit, list):
            continue
        stop = band.end if band.end is not None else data.end
        for node in hit:
            if node in row:
                downs.add(what)
                ax.broken_barh([(_seconds(band.start), _seconds(stop - band.start))],
                               (row[node] - 0.3, 0.6), facecolors="none",
                               edgecolors="#212529", hatch="////", lw=0, zorder=3)
    ax.set_yticks(range(len(nodes)), nodes)
    ax.set_ylim(len(nodes) - 0.4, -0.75)
    ax.set_xlim(0, max(_seconds(data.end), 1e-3))
    ax.set_xlabel("time since the run started (s)")
    ax.set_title("node roles, as the nodes reported them (v: became leader, with its term)")
    legend = [Patch(color=colour, label=role) for role, colour in seen_roles.items()]
    legend += [Patch(facecolor="none", edgecolor="#212529", hatch="////", lw=0,
                     label=f"node {what} (fault)") for what in sorted(downs)]
    ax.legend(handles=legend + handles, loc="upper left", bbox_to_anchor=(1.0, 1.0),
              frameon=False, fontsize=8)
    return figure
