"""The side-by-side table: one row per figure, Rubin vs Open WebUI and their ratio, with the issue's target."""

from __future__ import annotations

import os
import statistics
from typing import Any

from bench.harness import percentile, print_table

Row = tuple[str, str, str, str, str]
R, OW = "Rubin", "Open WebUI"


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _ratio(rubin: float, other: float | None) -> str:
    if other is None or other != other or not other or rubin != rubin:
        return "-"
    return f"{rubin / other:.2f}x"


def _pair(res: dict[str, dict[str, list[Any]]], key: str, f: Any = _med) -> tuple[float, float | None]:
    rubin = f(res[R][key]) if res[R].get(key) else float("nan")
    other = f(res[OW][key]) if OW in res and res[OW].get(key) else None
    return rubin, other


def _row(name: str, rubin: float, other: float | None, fmt: str, target: str) -> Row:
    shown = "-" if other is None else format(other, fmt)
    return (name, format(rubin, fmt), shown, _ratio(rubin, other), target)


def rows(res: dict[str, dict[str, list[Any]]], pieces: int, clients: int) -> list[Row]:
    """The table's rows for whatever figures were measured."""
    out: list[Row] = []
    if res[R].get("wire"):
        r, o = _pair(res, "wire")
        out.append(_row(f"1 wire bytes per {pieces}-piece answer, server->browser (median)", r, o, ",.0f",
                        "<= 0.5x Open WebUI"))  # fmt: skip
        r, o = _pair(res, "page")
        out.append(_row("1 page-received websocket bytes (decompressed)", r, o, ",.0f", "-"))
        r, o = _pair(res, "page_per_text")
        out.append(_row("1 page-received bytes / answer text bytes", r, o, ".2f", "Rubin <= 2x"))
        r, o = _pair(res, "frames")
        out.append(_row("1 websocket frames per answer", r, o, ".0f", "-"))
        ext = {app: ("yes" if any("permessage-deflate" in e for e in res[app]["ext"]) else "no") for app in res}
        out.append(("1 permessage-deflate negotiated", ext[R], ext.get(OW, "-"), "-", "yes"))
    if res[R].get("ttft"):
        for q in (50, 95):
            r, o = _pair(res, "ttft", lambda v, q=q: percentile(v, q))
            out.append(_row(f"2 browser time to first token p{q}, ms ({len(res[R]['ttft'])} answers)", r, o, ".0f",
                            "not worse"))  # fmt: skip
    if res[R].get("load"):
        r, o = _pair(res, "load")
        out.append(_row("3 first load, kB received (cold cache, CDP, all requests)", r / 1e3, o and o / 1e3, ",.0f",
                        "Rubin <= 300 kB"))  # fmt: skip
        r, o = _pair(res, "load_wire")
        out.append(_row("3 first load, kB on the wire (proxy, incl. websocket)", r / 1e3, o and o / 1e3, ",.0f", "-"))
    if res[R].get("open"):
        r, o = _pair(res, "open")
        out.append(_row("4 open a 2,000-message chat, newest visible, ms p50", r, o, ".0f", "<= 300 ms"))
    if res[R].get("frame"):
        r, o = _pair(res, "frame", max)
        out.append(_row("5 scroll up 3 older pages: longest frame, ms (max)", r, o, ".0f", "<= 50 ms"))
        r, o = _pair(res, "task", max)
        out.append(_row("5 scroll up: longest task, ms (max)", r, o, ".0f", "-"))
        r, o = _pair(res, "tbt")
        out.append(_row("5 scroll up: total blocking time, ms (median)", r, o, ".0f", "<= 30 ms"))
    if res[R].get("crowd_first"):
        r, o = _pair(res, "crowd_first", lambda v: percentile(v, 50))
        out.append(_row(f"6 {clients} clients at once: first piece p50, ms", r, o, ".0f", "<= 50 ms"))
        r, o = _pair(res, "crowd_first", lambda v: percentile(v, 95))
        out.append(_row(f"6 {clients} clients at once: first piece p95, ms", r, o, ".0f", "-"))
        r, o = _pair(res, "crowd_ratio")
        out.append(_row(f"6 {clients} clients: all done / one answer alone", r, o, ".2f", "<= 1.1x"))
        r, o = _pair(res, "crowd_failed", sum)
        out.append(_row(f"6 {clients} clients: answers that failed (no text; left out), all runs", r, o, ".0f", "0"))
        r, o = _pair(res, "alone_s")
        out.append(_row("6 one answer alone, s (same pages)", r, o, ".2f", "-"))
    if res[R].get("start"):
        r, o = _pair(res, "start")
        out.append(_row("7 start -> first 200 of the page, s (median)", r, o, ".1f", "<= 3 s"))
    if res[R].get("pss"):
        r, o = _pair(res, "pss")
        out.append(_row("8 idle memory, PSS of the app's process tree, MB", r, o, ".0f", "Rubin <= 150 MB"))
    return out


def report(res: dict[str, dict[str, list[Any]]], pieces: int, clients: int, runs: int, loads: list[str]) -> None:
    """Print the table and what it counted."""
    title = f"Side by side with Open WebUI 0.12.4 — same stand-in (200 pieces/s), Chromium, {runs} run(s), interleaved"
    print_table(title + " (the 'baseline' column is Open WebUI)", rows(res, pieces, clients))
    print(f"\nload average: {' -> '.join(loads)}; {os.cpu_count()} cores")
    for app, got in res.items():
        if got.get("pss_parts"):
            print(f"{app}: processes counted for PSS (MB): " + "; ".join(got["pss_parts"][-1]))
    print("Wire bytes: TCP payload from the app to Chromium through a SOCKS5 counting proxy (HTTP headers and bodies,"
          " websocket frames with their headers, compressed as sent), from the Enter keydown to the answer done"
          " in the DOM + 1 s. Page-received: websocket payloads after decompression (CDP) in the same window.")  # fmt: skip
