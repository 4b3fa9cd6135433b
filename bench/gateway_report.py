"""The table of bench/gateway_bench.py, from its results (the same dict its --json writes).

Re-print a saved run: .venv/bin/python -m bench.gateway_report bench/results/gateway-<time>.json
"""

from __future__ import annotations

import json
import math
import sys

from bench.harness import percentile

COLUMNS = {"direct": "stand-in direct", "litellm": "LiteLLM", "rubin": "Rubin", "rubin-cache": "Rubin, cache hit"}


def _num(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"x{a / b:.2f}" if a is not None and b else "-"


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def print_report(res: dict) -> None:
    """Markdown table: one column per target, Rubin vs LiteLLM, the issue's targets; then how it ran."""
    args, load, lat, names = res["args"], res["throughput"], res["latency"], res["scenarios"]
    cols = [n for n in COLUMNS if n in names]
    rps = {n: load[n]["rps"] for n in cols}
    rows: list[list[str]] = []

    def row(metric: str, cells: dict[str, str], versus: str, target: str) -> None:
        rows.append([metric, *(cells.get(n, "-") for n in cols), versus, target])

    versus = _ratio(rps.get("rubin"), rps.get("litellm"))
    if "rubin-cache" in rps and "litellm" in rps:
        versus += f" (cache hit {_ratio(rps['rubin-cache'], rps['litellm'])})"
    row(f"(a) non-streaming requests/s, concurrency {args['concurrency']}", {n: _num(rps[n], 0) for n in cols},
        versus, "Rubin >= 2x LiteLLM; cache hit >= 1,000")  # fmt: skip
    row("(a) latency under that load p50 / p95, ms",
        {n: f"{_num(load[n]['p50_ms'])} / {_num(load[n]['p95_ms'])}" for n in cols}, "-", "-")  # fmt: skip
    row("(a) failed requests", {n: str(sum(load[n]["errors"].values()) or 0) for n in cols}, "-", "0")
    cpu = {n: load[n]["cpu_pct"] for n in cols}
    row("(a) CPU % of one core: client / gateway / stand-in / rest of the machine",
        {n: f"{cpu[n]['client']:.0f} / {cpu[n]['gateway']:.0f} / {cpu[n]['stand-in']:.0f} / "
            f"{cpu[n].get('others', 0):.0f}" for n in cols},
        "-", "-")  # fmt: skip
    for kind, label, target in (("plain", "non-streaming", "added p50 <= 3 ms"), ("ttft", "streaming TTFT", "-")):
        for q in (50, 95):
            value = {n: percentile(lat[n][kind], q) for n in cols}
            base = value["direct"]
            cells = {n: _num(value[n], 2) + ("" if n == "direct" else f" (+{value[n] - base:.2f})") for n in cols}
            vs = "-"
            if "rubin" in value and "litellm" in value:
                vs = f"added {value['rubin'] - base:+.2f} vs {value['litellm'] - base:+.2f} ms"
            row(f"(b) {label} p{q}, ms (added), concurrency 1", cells, vs, target if q == 50 else "-")
    idle, after = res["rss_mb"]["idle"], res["rss_mb"]["after"]
    row("(c) RSS of the process tree, MB: idle / after",
        {n: f"{idle[n]:.0f} / {after[n]:.0f}" for n in cols if n in idle}, _ratio(after.get("rubin"),
        after.get("litellm")), "-")  # fmt: skip

    v = res["versions"]
    print(f"\nOpenAI-compatible gateway benchmark — {v.get('cores')} cores, {args['workers']} workers per gateway, "
          f"stand-in answers at once ({args['tokens']} pieces); {res['when']}, commit {v.get('commit', '?')}, "
          f"load average at start {res.get('loadavg_at_start', [float('nan')])[0]:.1f}\n")  # fmt: skip
    _table(["metric", *(COLUMNS[n] for n in cols), "Rubin vs LiteLLM", "target"], rows)
    print()
    client_cpu = cpu["direct"]["client"]
    per_core = rps["direct"] / max(client_cpu / 100, 1e-3)
    print(f"- Client ceiling: {rps['direct']:,.0f} requests/s straight to the stand-in with the client ({args['client']}, "
          f"{args['client_procs']} process(es)) at {client_cpu:.0f}% of a core: about {per_core:,.0f} requests/s per "
          "core of client; " + ("the client is the limit." if client_cpu >= 85 * args["client_procs"] else
          "the stand-in and the cores are the limit, not the client."))  # fmt: skip
    print(f"- Throughput: {args['duration']:g} s per target after {args['warmup']:g} s of warm-up, one target at a "
          f"time; latency: {len(lat['direct']['plain'])} samples per target and kind, targets interleaved.")  # fmt: skip
    if "litellm" in cols:
        redis = "no Redis: limits counted per worker" if args["no_litellm_redis"] else "shared through Redis"
        print(f"- LiteLLM {v.get('litellm', '?')}: `litellm --num_workers {args['workers']}` (uvicorn), "
              "LITELLM_LOG=ERROR, no callbacks, local cost map. Keys: custom_auth returning per-key limits "
              f"(1,000,000 rpm, 1,000 parallel), enforced by LiteLLM's rate limiter, {redis} (virtual keys need "
              "Prisma engines, which cannot be downloaded here). A key limited to 2 rpm got "
              f"{res['limit_probe'].get('litellm')}.")  # fmt: skip
    if "rubin" in cols:
        print(
            f"- Rubin: production build (granian), WORKERS={args['workers']} with Redis; the key's own limit "
            "1,000,000 rpm (`keys create --rpm`), the user's 1,000,000 rpm and 1,000 answers at once; the "
            "cache-hit column sends one question over and over, temperature 0. A key limited to 2 rpm got "
            f"{res['limit_probe'].get('rubin')}."
        )
    for name, conns in res["foreign_connections"].items():
        if conns:
            print(f"- WARNING: {name} held connections off this machine: {conns}")


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print_report(json.load(f))
