"""A Rubin cluster on one machine (bench/cluster.py): two production instances with two workers each behind haproxy,
one redis-server, one PostgreSQL and the LocalAI stand-in (20 tokens/s), started once for the folder.

Every test here is marked `slow` (the third pytest session of scripts/test.sh) and leaves the cluster whole.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.cluster import Cluster
from bench.harness import ROOT

ARTIFACTS = ROOT / "test-artifacts" / "cluster"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is slow."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The running cluster; its logs (instances, haproxy, build) are kept in test-artifacts/cluster."""
    workdir = tmp_path_factory.mktemp("cluster")
    try:
        with Cluster(workdir, instances=2, workers=2, rate=20.0) as running:
            yield running
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for log in workdir.glob("*.log"):
            shutil.copy(log, ARTIFACTS / log.name)


@pytest.fixture
def whole(cluster: Cluster) -> Cluster:
    """The cluster with every part running and every instance healthy behind the load balancer."""
    for inst in cluster.instances:
        if not inst.alive():
            cluster.start_instance(inst)
        cluster.wait_healthy(inst)
        cluster.wait_in_lb(inst)
    if not cluster.redis.ping():
        cluster.redis.start()
    if not cluster.standin.ready():
        cluster.standin.start()
    return cluster
