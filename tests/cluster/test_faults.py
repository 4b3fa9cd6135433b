"""The cluster under faults while users chat (issue #14): every question saved once with its whole answer, and
the users' tabs shown the rest. Numbers of the same scenarios: scripts/bench.sh cluster."""

from __future__ import annotations

from bench.cluster import Cluster
from bench.cluster_faults import FaultReport, run_fault

USERS = 8


def assert_nothing_lost(rep: FaultReport) -> None:
    """What a user checks afterwards: each question once in the chat, its answer whole, seen to the end."""
    assert rep.questions >= rep.users, f"users did not get to chat: {rep}"
    assert rep.lost == 0, f"{rep.lost} answers not saved whole (or saved complete but short): {rep.problems}"
    assert rep.duplicated == 0, f"questions saved twice: {rep.verdict.duplicated}"
    assert rep.verdict.saved_whole == rep.questions, rep.problems


def assert_tabs_followed(rep: FaultReport) -> None:
    """A tab whose connection broke mid-answer reconnected and was shown the rest as it was written."""
    assert not rep.not_live, f"{len(rep.not_live)} of {rep.reattached} re-attached tabs got the rest only at the end"


def assert_no_failed_request(rep: FaultReport) -> None:
    """Nobody had to send again or press Retry, and every plain HTTP request through the balancer was answered."""
    assert rep.failed == 0, f"{rep.failed} of {rep.requests} requests failed: {rep.problems}"
    assert rep.http_failed == 0, f"{rep.http_failed} of {rep.http_made} HTTP requests failed"


def test_kill_9_of_an_instance_mid_answer_its_answers_continue_elsewhere(whole: Cluster) -> None:
    # 80-token answers (4 s): the rest left after the hand-over is long enough to be seen arriving.
    rep = run_fault(whole, "kill9", users=USERS, tokens=80)
    assert rep.reconnects >= 1, "no tab was on the killed instance"
    assert_nothing_lost(rep)
    assert_tabs_followed(rep)
    # The answers of the dead instance went on by themselves (no Retry): recovery by another worker.
    assert_no_failed_request(rep)


def test_rolling_restart_of_every_instance_loses_nothing_and_fails_nothing(whole: Cluster) -> None:
    rep = run_fault(whole, "rolling", users=USERS, tokens=80, settle=6.0)
    assert_nothing_lost(rep)
    assert_tabs_followed(rep)
    assert_no_failed_request(rep)


def test_redis_restarted_users_keep_chatting(whole: Cluster) -> None:
    rep = run_fault(whole, "redis", users=USERS)
    assert_nothing_lost(rep)
    assert_no_failed_request(rep)


def test_postgresql_restarted_mid_answer_the_answer_is_saved_when_it_is_back(whole: Cluster) -> None:
    rep = run_fault(whole, "postgres", users=USERS)
    assert_nothing_lost(rep)
    assert rep.http_failed == 0, "haproxy took an instance out: /api/health does not depend on the database"


def test_localai_killed_and_restarted_answers_go_on_when_it_is_back(whole: Cluster) -> None:
    rep = run_fault(whole, "localai", users=USERS)
    assert rep.stalls_over_1s >= 1, "no answer was streaming when LocalAI died: the fault was not mid-answer"
    assert_nothing_lost(rep)
    # Answers cut by LocalAI's death are asked again from their partial text once it is back: no Retry needed.
    assert_no_failed_request(rep)
    assert rep.reconnects == 0, "tabs lost their connection to Rubin because LocalAI was away"


def test_load_balancer_reloaded_softly_nothing_fails(whole: Cluster) -> None:
    rep = run_fault(whole, "lb_reload", users=USERS, settle=5.0)
    assert_nothing_lost(rep)
    assert_no_failed_request(rep)
