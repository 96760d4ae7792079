"""A private Redis Cluster for tests: real ``redis-server`` processes on free loopback ports.

``running_cluster(masters=3, replicas=1)`` starts ``masters * (1 + replicas)`` servers with
``--cluster-enabled yes`` (each with its cluster bus, port + 10000, free too), joins them with
``redis-cli --cluster create ... --cluster-replicas N --cluster-yes``, waits until every node
reports ``cluster_state:ok`` and every replica's link to its master is up, and stops them all
at exit. Node timeouts are short (``cluster-node-timeout`` 500 ms), so a killed master's
replica is promoted in about a second and the fault tests stay in seconds.

The session's shared cluster (3 masters, 3 replicas) is :func:`shared_cluster`; tests that kill
or reshard nodes start their own with :func:`running_cluster`. Without ``redis-server`` or
``redis-cli`` the tests skip (fail under ``CI=true``).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from .redis_servers import IN_CI, RedisServer, free_port, require_binary

__all__ = ["ClusterNode", "TestCluster", "running_cluster", "shared_cluster"]

SLOTS = 16384
# Short timeouts keep failover in about a second; a replica always tries to take over
# (validity factor 0), however long its link to the dead master was down; a replica syncs at
# once (no diskless-sync delay).
NODE_ARGS = (
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "500",
    "--cluster-replica-validity-factor",
    "0",
    "--cluster-allow-replica-migration",
    "no",
    "--repl-diskless-sync-delay",
    "0",
)


def require_cli() -> str:
    """The ``redis-cli`` binary; skips without it (fails under ``CI=true``)."""
    cli = shutil.which("redis-cli")
    if cli is None:
        message = "no redis-cli on PATH (apt-get install redis-tools), needed to create a cluster"
        if IN_CI:
            pytest.fail(message + "; CI must run every real-server suite")
        pytest.skip(message)
    return cli


@dataclass
class ClusterNode:
    """One node as the cluster sees it (a line of ``CLUSTER NODES``)."""

    node_id: str
    port: int
    role: str  # "master" or "slave"
    master_id: str | None
    slots: list[tuple[int, int]]
    failed: bool


@dataclass
class TestCluster:
    """The servers of one private cluster and the operations the fault tests need.

    Attributes:
        servers: Every node's process, in start order.
        cli: The ``redis-cli`` binary.
    """

    __test__ = False  # not a test class, whatever its name

    servers: list[RedisServer]
    cli: str
    _admins: dict[int, redis.Redis] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """``redis+cluster://`` URL of the first live node (any node discovers the rest)."""
        return f"redis+cluster://127.0.0.1:{self.live()[0].port}"

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    def live(self) -> list[RedisServer]:
        return [s for s in self.servers if s.process is not None]

    def admin(self, port: int) -> redis.Redis:
        """A plain (non-cluster) synchronous client of the node on ``port``."""
        client = self._admins.get(port)
        if client is None:
            client = redis.Redis(
                host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=2
            )
            self._admins[port] = client
        return client

    def server(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def nodes(self, port: int | None = None) -> list[ClusterNode]:
        """The cluster as the node on ``port`` (default: the first live one) sees it."""
        port = self.live()[0].port if port is None else port
        text = self.admin(port).execute_command("CLUSTER", "NODES")
        if isinstance(text, bytes):
            text = text.decode()
        nodes = []
        for line in str(text).splitlines():
            fields = line.split()
            if len(fields) < 8:
                continue
            address = fields[1].split("@")[0]
            flags = fields[2].split(",")
            slots: list[tuple[int, int]] = []
            for spec in fields[8:]:
                if spec.startswith("["):
                    continue  # a slot being migrated or imported
                low, _, high = spec.partition("-")
                slots.append((int(low), int(high or low)))
            nodes.append(
                ClusterNode(
                    node_id=fields[0],
                    port=int(address.rsplit(":", 1)[1]),
                    role="master" if "master" in flags else "slave",
                    master_id=None if fields[3] == "-" else fields[3],
                    slots=slots,
                    failed="fail" in flags or "fail?" in flags,
                )
            )
        return nodes

    def masters(self) -> list[ClusterNode]:
        """The live masters that serve slots, by port."""
        return sorted(
            (n for n in self.nodes() if n.role == "master" and n.slots and not n.failed),
            key=lambda n: n.port,
        )

    def master_of_slot(self, slot: int) -> ClusterNode:
        for node in self.masters():
            if any(low <= slot <= high for low, high in node.slots):
                return node
        raise LookupError(f"no live master serves slot {slot}")

    def keyslot(self, key: str | bytes) -> int:
        return int(self.admin(self.live()[0].port).execute_command("CLUSTER", "KEYSLOT", key))

    def wait_ok(self, timeout: float = 15.0) -> None:
        """Wait until every live node reports ``cluster_state:ok``, agrees on who serves each
        slot, and every live replica's link to its master is up."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            try:
                last = self._health()
            except (redis.RedisError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if not last:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster not healthy after {timeout} s: {last}")
            time.sleep(0.05)

    def _health(self) -> str:
        views = set()
        for server in self.live():
            admin = self.admin(server.port)
            info = admin.execute_command("CLUSTER", "INFO")
            if isinstance(info, bytes):
                info = info.decode()
            if "cluster_state:ok" not in str(info):
                return f"node {server.port} is not ok"
            nodes = self.nodes(server.port)
            views.add(
                tuple(
                    sorted(
                        (n.port, tuple(n.slots))
                        for n in nodes
                        if n.role == "master" and n.slots and not n.failed
                    )
                )
            )
            me = next(n for n in nodes if n.port == server.port)
            if me.role == "slave":
                repl = admin.info("replication")
                if repl.get("master_link_status") != "up":
                    return f"replica {server.port} has no link to its master"
        if len(views) != 1:
            return "nodes disagree on the slot map"
        covered = sum(high - low + 1 for _, slots in next(iter(views)) for low, high in slots)
        if covered != SLOTS:
            return f"{covered} of {SLOTS} slots served"
        return ""

    def replica_of(self, master: ClusterNode) -> ClusterNode:
        return next(n for n in self.nodes() if n.master_id == master.node_id and not n.failed)

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (no shutdown, no save)."""
        admin = self._admins.pop(port, None)
        if admin is not None:
            admin.close()
        self.server(port).kill()

    def wait_promoted(self, port: int, timeout: float = 15.0) -> None:
        """Wait until the node on ``port`` is a master serving slots, and the cluster is ok."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError, OSError, StopIteration):
                me = next(n for n in self.nodes(port) if n.port == port)
                if me.role == "master" and me.slots:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {port} was not promoted within {timeout} s")
            time.sleep(0.05)
        self.wait_ok(max(1.0, deadline - time.monotonic()))

    def restart(self, port: int) -> None:
        """Start a killed node again on its port; it rejoins (as a replica if it lost its slots)."""
        self.server(port).restart()

    def migrate_slot(self, slot: int, target_port: int, keys_per_call: int = 10) -> int:
        """Move ``slot`` to the master on ``target_port`` the way ``redis-cli --cluster reshard``
        does: IMPORTING on the target, MIGRATING on the source, ``MIGRATE`` the keys a batch at a
        time, then ``SETSLOT NODE`` on both and every other master. Returns the keys moved."""
        if self.master_of_slot(slot).port == target_port:
            return 0
        self.begin_migration(slot, target_port)
        moved = self.move_keys(slot, target_port, keys_per_call)
        self.end_migration(slot, target_port)
        return moved

    def begin_migration(self, slot: int, target_port: int) -> None:
        """Mark ``slot`` IMPORTING on the target and MIGRATING on its master."""
        source = self.master_of_slot(slot)
        target = next(n for n in self.masters() if n.port == target_port)
        self.admin(target.port).execute_command(
            "CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id
        )
        self.admin(source.port).execute_command(
            "CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id
        )

    def move_keys(self, slot: int, target_port: int, keys_per_call: int = 10) -> int:
        """``MIGRATE`` every key of a migrating ``slot`` to the target; returns how many."""
        src = self.admin(self.master_of_slot(slot).port)
        moved = 0
        while True:
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, keys_per_call)
            if not keys:
                return moved
            src.execute_command(
                "MIGRATE", "127.0.0.1", target_port, "", 0, 5000, "REPLACE", "KEYS", *keys
            )
            moved += len(keys)

    def end_migration(self, slot: int, target_port: int) -> None:
        """Give ``slot`` to the target: ``SETSLOT NODE`` on it, the source, the other masters."""
        source = self.master_of_slot(slot)
        target = next(n for n in self.masters() if n.port == target_port)
        others = [m for m in self.masters() if m.node_id not in (source.node_id, target.node_id)]
        for node in [target, source, *others]:
            self.admin(node.port).execute_command(
                "CLUSTER", "SETSLOT", slot, "NODE", target.node_id
            )

    def reshard(self, source_port: int, target_port: int, slots: int) -> None:
        """Move ``slots`` slots from one master to another with ``redis-cli --cluster reshard``."""
        source = next(n for n in self.masters() if n.port == source_port)
        target = next(n for n in self.masters() if n.port == target_port)
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "reshard",
                f"127.0.0.1:{source.port}",
                "--cluster-from",
                source.node_id,
                "--cluster-to",
                target.node_id,
                "--cluster-slots",
                str(slots),
                "--cluster-yes",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )

    def close(self) -> None:
        for admin in self._admins.values():
            admin.close()
        self._admins.clear()
        for server in self.servers:
            server.stop()


def _start(masters: int, replicas: int, workdir: Path, flavour: str = "redis") -> TestCluster:
    binary = require_binary(flavour)
    cli = require_cli()
    servers: list[RedisServer] = []
    cluster = TestCluster(servers, cli)
    try:
        for i in range(masters * (1 + replicas)):
            node_dir = workdir / f"node{i}"
            node_dir.mkdir()
            server = RedisServer(flavour, binary, free_port(cluster=True), node_dir, NODE_ARGS)
            servers.append(server)
            server.start()
        if masters == 1 and replicas == 0:
            # redis-cli refuses a cluster of fewer than 3 masters: assign the slots directly.
            cluster.admin(servers[0].port).execute_command("CLUSTER", "ADDSLOTSRANGE", 0, SLOTS - 1)
        else:
            _create(cli, [s.port for s in servers], replicas, masters)
        cluster.wait_ok()
        return cluster
    except BaseException:
        cluster.close()
        raise


def _create(cli: str, ports: list[int], replicas: int, masters: int) -> None:
    if masters >= 3:
        addresses = [f"127.0.0.1:{p}" for p in ports]
        replicas_arg = ["--cluster-replicas", str(replicas)]
        done = subprocess.run(
            [cli, "--cluster", "create", *addresses, *replicas_arg, "--cluster-yes"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout.decode()}")
        return
    # redis-cli creates clusters of 3 masters or more; smaller ones (benchmarks) by hand:
    # every node meets the first, the masters split the slots, the replicas follow theirs.
    first = redis.Redis(host="127.0.0.1", port=ports[0], socket_timeout=5)
    try:
        for port in ports[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        per = SLOTS // masters
        for i, port in enumerate(ports[:masters]):
            low, high = i * per, SLOTS - 1 if i == masters - 1 else (i + 1) * per - 1
            with redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) as node:
                node.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
    finally:
        first.close()
    ids = []
    for port in ports[:masters]:
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) as node:
            ids.append(node.execute_command("CLUSTER", "MYID").decode())
    for i, port in enumerate(ports[masters:]):
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) as node:
            deadline = time.monotonic() + 10
            while True:  # the replica must have heard of its master first
                try:
                    node.execute_command("CLUSTER", "REPLICATE", ids[i % masters])
                    break
                except redis.ResponseError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)


@contextlib.contextmanager
def running_cluster(
    masters: int = 3, replicas: int = 1, flavour: str = "redis"
) -> Iterator[TestCluster]:
    """A started private cluster (of ``redis`` or ``valkey`` servers), stopped (and its
    directories removed) at exit."""
    with tempfile.TemporaryDirectory(prefix="tta-cluster-") as tmp:
        cluster = _start(masters, replicas, Path(tmp), flavour)
        try:
            yield cluster
        finally:
            cluster.close()


_SHARED: list[TestCluster] = []


def shared_cluster(config: pytest.Config) -> TestCluster:
    """The session's cluster (3 masters, 3 replicas), started on first use, stopped when
    pytest ends. Tests on it must not kill, pause or reshard its nodes."""
    if not _SHARED:
        tmp = tempfile.TemporaryDirectory(prefix="tta-cluster-")
        config.add_cleanup(tmp.cleanup)
        cluster = _start(3, 1, Path(tmp.name))
        config.add_cleanup(cluster.close)
        _SHARED.append(cluster)
    return _SHARED[0]
