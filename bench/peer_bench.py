"""One run that measures Rubin side by side with Open WebUI 0.12.4 and prints ratios (issue #16).

Both apps run at once against the same LocalAI stand-in (200 pieces/s), in the same Debian Chromium; samples
alternate (Rubin, Open WebUI, Rubin, ...). Figures (numbers as in the table):
  1 wire bytes per streamed 600-piece answer (a counting SOCKS5 proxy between Chromium and the apps),
    page-received websocket bytes vs the answer's own text, permessage-deflate negotiated or not;
  2 browser time to first token p50/p95 (Enter keydown -> first streamed text in the page);
  3 first load: bytes received for a cold load of the signed-in chat page;
  4 open a 2,000-message chat: navigation start -> newest message in the page, p50;
  5 scroll up a 2,000-message chat through three older pages: longest frame, total blocking time;
  6 20 clients (pages) sending at once: first piece p50/p95, all done vs one answer alone;
  7 start -> first 200 of the page (Rubin: `python -m rubin_app.container serve` from a build made once;
    Open WebUI: `open-webui serve`);
  8 idle memory: PSS of each app's whole process tree after one page load and 10 s idle.
Usage: scripts/bench.sh peers [--runs N] [--only 1,2,...] [--no-owui]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, sync_playwright

from bench import longchat_bench, owui_server
from bench.byte_proxy import ByteProxy
from bench.harness import CHROMIUM_ARGS
from bench.peer_apps import PeerApp, owui, rubin
from bench.peer_chats import Crowd, open_time, scroll_sample
from bench.peer_report import report
from bench.peer_stream import answer_bytes, first_load, stream_page, ttft_sample
from tests.fakes.localai_standin import StandIn, StandInConfig

LONG = 2000
Results = dict[str, dict[str, list[Any]]]


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def step(what: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[peers {time.strftime('%H:%M:%S')}, load {load()}] {what}", file=sys.stderr, flush=True)


def seed(apps: list[PeerApp], tmp: Path) -> dict[str, str]:
    """The same 2,000-message chat (longchat_bench's Markdown texts) for each app; chat id per app."""
    data_dir = Path(apps[0].env["DATA_DIR"])  # the app's encryption key seals the seeded messages
    ids = {"Rubin": longchat_bench.seed(tmp / "rubin.db", [LONG], data_dir=data_dir)[0]}
    if len(apps) > 1:
        texts = [longchat_bench.text_of(i, last=i == LONG - 1) for i in range(LONG)]
        ids["Open WebUI"] = owui_server.seed_chat(apps[1].base, apps[1].token, texts, "2000 messages")
    return ids


def streaming(apps: list[PeerApp], proxied: Browser, plain: Browser, res: Results, args: Any, only: set[int]) -> None:
    """Figures 1-3."""
    if 3 in only:
        step("3: first loads")
        for _ in range(args.runs):
            for app in apps:
                got = first_load(app, proxied, PROXY)
                res[app.name]["load"].append(got["cdp"])
                res[app.name]["load_wire"].append(got["wire"])
    if 1 in only:
        step("1: wire and page bytes per answer")
        pages = [stream_page(app, proxied) for app in apps]
        for _ in range(args.runs):
            for sp in pages:
                got = answer_bytes(sp, PROXY, args.pieces)
                for key in ("wire", "page", "frames"):
                    res[sp.app.name][key].append(got[key])
                res[sp.app.name]["page_per_text"].append(got["page"] / got["text"])
        for sp in pages:
            res[sp.app.name]["ext"] = sp.ws.extensions
            sp.page.context.close()
    if 2 in only:
        step("2: time to first token")
        pages = [stream_page(app, plain).page for app in apps]
        for _ in range(10 * args.runs):
            for app, page in zip(apps, pages, strict=True):
                res[app.name]["ttft"].append(ttft_sample(app, page))
        for page in pages:
            page.context.close()


def long_chats(apps: list[PeerApp], plain: Browser, ids: dict[str, str], res: Results, args: Any) -> None:
    """Figures 4-5."""
    step("4-5: open and scroll a 2,000-message chat")
    pages = [app.context(plain).new_page() for app in apps]
    for app, page in zip(apps, pages, strict=True):
        open_time(app, page, ids[app.name])  # warm the cache (a returning user)
    for _ in range(args.runs):
        for app, page in zip(apps, pages, strict=True):
            res[app.name]["open"].append(open_time(app, page, ids[app.name]))
            page.wait_for_timeout(500)
    for _ in range(args.runs):
        for app, page in zip(apps, pages, strict=True):
            got = scroll_sample(app, page, ids[app.name])
            for key in ("frame", "tbt", "task"):
                res[app.name][key].append(got[key])
    for page in pages:
        page.context.close()


def crowds(apps: list[PeerApp], plain: Browser, res: Results, args: Any) -> None:
    """Figure 6: per run and app, one answer alone, then `clients` at once, on the same warmed-up pages."""
    for run in range(args.runs):
        for app in apps:
            step(f"6: {args.clients} clients, run {run + 1}, {app.name}")
            crowd = Crowd(app, plain, args.clients)
            try:
                alone = crowd.round(1, args.crowd_pieces)["all_done"]
                many = crowd.round(args.clients, args.crowd_pieces)
            finally:
                crowd.close()
            res[app.name]["crowd_first"].extend(many["firsts"])  # type: ignore[arg-type]
            res[app.name]["crowd_failed"].append(many["failed"])
            res[app.name]["crowd_ratio"].append(many["all_done"] / alone)
            res[app.name]["alone_s"].append(alone / 1000)


def starts(apps: list[PeerApp], plain: Browser, res: Results, args: Any, only: set[int]) -> None:
    """Figures 7-8: each app alone, restarted `runs` times: seconds to the first 200, then one page load, 10 s idle,
    PSS of its process tree."""
    for app in apps:
        app.stop()
    for run in range(args.runs):
        for app in apps:
            step(f"7-8: start and idle memory, run {run + 1}, {app.name}")
            seconds = app.start()
            if 7 in only:
                res[app.name]["start"].append(seconds)
            if 8 in only:
                context = app.context(plain)
                page = context.new_page()
                page.goto(app.base + "/")
                page.locator(app.cfg["composer"]).wait_for(timeout=120_000)
                page.wait_for_timeout(2000)
                context.close()
                time.sleep(10)
                pss, parts = app.pss_mb()
                res[app.name]["pss"].append(pss)
                res[app.name]["pss_parts"].append(parts)
            app.stop()


PROXY = ByteProxy()


def guarded(errors: list[str], figures: str, run: Callable[[], None]) -> None:
    """Run one group of figures; a failure is reported with the table (the other groups still run)."""
    try:
        run()
    except Exception as exc:  # a bench keeps going: what failed is printed under the table, exit status 1
        step(f"figures {figures} failed: {exc}")
        errors.append(f"figures {figures}: {type(exc).__name__}: {str(exc)[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="samples of each figure per app (TTFT: 10 per run)")
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8", help="comma-separated figure numbers")
    parser.add_argument("--no-owui", action="store_true", help="Rubin alone")
    parser.add_argument("--pieces", type=int, default=600, help="pieces of the streamed answer (figure 1)")
    parser.add_argument("--clients", type=int, default=20, help="clients sending at once (figure 6)")
    parser.add_argument("--crowd-pieces", type=int, default=300, help="pieces per answer in figure 6")
    args = parser.parse_args()
    only = {int(x) for x in args.only.split(",") if x.strip()}
    if not args.no_owui and not owui_server.installed():
        raise SystemExit("Open WebUI is not installed: run bench/setup_owui.sh (scripts/bench.sh peers does)")
    loads = [load()]
    tmp = Path(tempfile.mkdtemp(prefix="rubin-peers-"))
    standin = StandIn(StandInConfig(token_rate=200.0, tokens=20)).start()
    PROXY.start()
    res: Results = defaultdict(lambda: defaultdict(list))
    errors: list[str] = []
    apps: list[PeerApp] = []
    try:
        step("building Rubin's frontend once (reflex export) in an isolated copy")
        apps.append(rubin(standin.url, tmp))
        if not args.no_owui:
            apps.append(owui(standin.url, tmp))
        for app in apps:
            step(f"starting {app.name}")
            app.start()
            app.sign_in()
        ids = seed(apps, tmp) if only & {4, 5} else {}
        with sync_playwright() as pw:
            plain = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            proxied = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS + PROXY.chromium_args)
            guarded(errors, "1-3", lambda: streaming(apps, proxied, plain, res, args, only))
            if only & {4, 5}:
                guarded(errors, "4-5", lambda: long_chats(apps, plain, ids, res, args))
            if 6 in only:
                guarded(errors, "6", lambda: crowds(apps, plain, res, args))
            if only & {7, 8}:
                guarded(errors, "7-8", lambda: starts(apps, plain, res, args, only))
            proxied.close()
            plain.close()
    finally:
        for app in apps:
            app.stop()
        PROXY.stop()
        standin.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    loads.append(load())
    res.setdefault("Rubin", defaultdict(list))
    report(res, args.pieces, args.clients, args.runs, loads)
    for error in errors:
        print(f"NOT MEASURED: {error}")
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
