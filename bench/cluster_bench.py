"""The cluster on one machine under faults (issue #14): per-fault figures, a soak, and users per core.

  (a) each fault once while users chat: answers lost (target 0), requests failed, longest stall, time to recover;
  (b) a soak (default 10 minutes) with a fault every minute, cycling through them: availability = requests answered
      / requests made (target >= 99.9 %), chat requests and plain HTTP requests through the load balancer;
  (c) users per core: the most users chatting at once (answers streaming at 20 tokens/s) with no stream stalled
      over 1 s mid-answer, for one instance and for two behind haproxy (the count stepped up until it fails).
Usage: scripts/bench.sh cluster [--only faults,soak,users] [--soak-minutes 10] [--steps 10,25,50,...]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
from collections import Counter
from collections.abc import Callable

from bench.cluster import Cluster
from bench.cluster_faults import FAULTS, REPORT_HEADER, chat_through, make_users, report, run_fault
from bench.cluster_load import STALL_S, ChatUser, verify
from bench.harness import percentile


def table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A Markdown table."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |", flush=True)


def faults(cluster: Cluster, users: int) -> None:
    rows = []
    for name in FAULTS:
        rep = run_fault(cluster, name, users=users)
        rows.append(rep.row())
        print(f"  {name}: {len(rep.problems)} problems; first: {rep.problems[:2]}", flush=True)
    table(f"(a) each fault once, {users} users chatting (40-token answers at 20 tokens/s) through haproxy, "
          "2 instances x 2 workers", REPORT_HEADER, rows)  # fmt: skip


def _soak_action(cluster: Cluster, name: str) -> Callable[[], None]:
    def act() -> None:
        restore = FAULTS[name][1](cluster)
        if name == "kill9":
            time.sleep(15)  # the instance is down for a while, then comes back
        restore()

    return act


def soak(cluster: Cluster, users: int, minutes: float) -> None:
    seconds = minutes * 60
    names = itertools.cycle(FAULTS)
    actions = [(30.0 + 60 * i, _soak_action(cluster, next(names))) for i in range(max(1, int(seconds // 60)))]
    chatting = make_users(cluster, users, 40)
    prober, spans = asyncio.run(chat_through(cluster, chatting, actions, max(10.0, seconds - actions[-1][0])))
    rep = report("soak", cluster, chatting, prober, spans)
    answered = rep.requests - rep.failed
    made = rep.requests + rep.http_made
    both = (answered + rep.http_made - rep.http_failed) / max(1, made)
    rows = [
        ("chat requests answered whole", f"{answered} / {rep.requests}", f"{100 * answered / max(1, rep.requests):.2f} %"),
        ("HTTP requests answered (GET /api/health)", f"{rep.http_made - rep.http_failed} / {rep.http_made}",
         f"{100 * (rep.http_made - rep.http_failed) / max(1, rep.http_made):.2f} %"),
        ("all requests", f"{answered + rep.http_made - rep.http_failed} / {made}", f"{100 * both:.2f} % (target >= 99.9 %)"),
        ("answers lost / duplicated", f"{rep.lost} / {rep.duplicated}", "target 0"),
        ("longest stall, stalls over 1 s", f"{rep.stall:.2f} s", f"{rep.stalls_over_1s}"),
    ]  # fmt: skip
    table(f"(b) soak: {minutes:g} min, {len(actions)} faults (one a minute: {', '.join(list(FAULTS)[: len(actions)])}), "
          f"{users} users", ("metric", "count", "share"), rows)  # fmt: skip
    kinds = Counter(_kind(p) for p in rep.problems)
    table(
        "(b) soak: what the failed requests met",
        ("what the user met", "requests"),
        [(k, str(n)) for k, n in kinds.most_common()],
    )


def _kind(problem: str) -> str:
    """The kind of trouble a problem line tells of."""
    if "shown: " in problem:
        return "error shown: " + problem.split("shown: ", 1)[1].split(";")[0]
    if "not saved" in problem:
        return "message sent to a dying instance, not saved (sent again)"
    if "saved then: interrupted" in problem or "is interrupted" in problem:
        return "answer interrupted, Retry pressed"
    if "tab ended" in problem:
        return "tab shown a short answer at its end (saved whole)"
    return problem.split(":")[0] if problem.startswith(("HTTP", "lost", "never", "dupl")) else "other"


async def _hold(users: list[ChatUser], seconds: float) -> None:
    stop = asyncio.Event()
    for i in range(0, len(users), 20):
        await asyncio.gather(*(u.connect() for u in users[i : i + 20]))

    async def one(i: int, user: ChatUser) -> None:
        await asyncio.sleep(2.0 * i / len(users))  # users press Enter over 2 s, not in one instant
        await user.run(stop, pause=0.5)

    tasks = [asyncio.create_task(one(i, u)) for i, u in enumerate(users)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    for user in users:
        await user.close()


def step(cluster: Cluster, users: list[ChatUser], seconds: float) -> tuple[bool, str]:
    """Everyone chats for `seconds`; passes with no mid-answer gap over 1 s and every answer whole and saved."""
    for user in users:
        user.exchanges.clear()
    asyncio.run(_hold(users, seconds))
    exchanges = [ex for u in users for ex in u.exchanges]
    mid = [b - a for ex in exchanges for a, b in itertools.pairwise(ex.arrivals)]
    first = [ex.arrivals[0] - ex.sent for ex in exchanges if ex.arrivals]
    verdict = verify(cluster, users)
    stalled, failed = sum(g > STALL_S for g in mid), sum(not ex.whole for ex in exchanges)
    bad = len(verdict.lost) + len(verdict.unsaved)
    ok = stalled == 0 and failed == 0 and bad == 0
    detail = (f"{len(exchanges)} answers, {failed} not whole, {bad} not saved whole, {stalled} gaps > 1 s "
              f"(longest {max(mid, default=0):.2f} s), first text p50 {percentile(first, 50):.2f} s "
              f"p95 {percentile(first, 95):.2f} s")  # fmt: skip
    return ok, detail


def users_per_core(instances: int, steps: list[int], seconds: float, direct: bool) -> tuple[int, list[tuple[str, ...]]]:
    """Step the number of users up until a step fails; the last passing count and the rows."""
    rows, limit = [], 0
    with Cluster(instances=instances, workers=2) as cluster:
        users: list[ChatUser] = []
        for n in steps:
            users += make_users(cluster, n - len(users), 40)
            if direct:
                for user in users:
                    user.url = cluster.instances[0].url
            ok, detail = step(cluster, users, seconds)
            rows.append((f"{instances} instance(s)", str(n), "yes" if ok else "NO", detail))
            print("  ", rows[-1], flush=True)
            if not ok:
                break
            limit = n
    return limit, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="faults,soak,users", help="comma-separated: faults, soak, users")
    parser.add_argument("--users", type=int, default=8, help="users chatting during the faults and the soak")
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    parser.add_argument("--steps", default="10,25,50,75,100,150,200,300", help="user counts for users per core")
    parser.add_argument("--step-seconds", type=float, default=20.0)
    args = parser.parse_args()
    only = set(args.only.split(","))
    if only & {"faults", "soak"}:
        with Cluster(instances=2, workers=2) as cluster:
            if "faults" in only:
                faults(cluster, args.users)
            if "soak" in only:
                soak(cluster, args.users, args.soak_minutes)
    if "users" in only:
        cores = os.cpu_count() or 1
        steps = [int(s) for s in args.steps.split(",")]
        one, rows1 = users_per_core(1, steps, args.step_seconds, direct=True)
        two, rows2 = users_per_core(2, steps, args.step_seconds, direct=False)
        table(f"(c) users chatting at once, answers at 20 tokens/s, no stream stalled over 1 s ({cores} cores, "
              "2 workers per instance, clients on the same machine)", ("setup", "users", "held", "detail"),
              rows1 + rows2)  # fmt: skip
        table("(c) users per core", ("setup", "users held", "users per core", "ratio"),
              [("1 instance (baseline)", str(one), f"{one / cores:.0f}", "x1.00"),
               ("2 instances behind haproxy", str(two), f"{two / cores:.0f}", f"x{two / max(1, one):.2f}")])  # fmt: skip


if __name__ == "__main__":
    main()
