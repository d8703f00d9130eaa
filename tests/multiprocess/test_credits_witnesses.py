"""Witness membership between 4 real `vudo node` processes, driven by the `vudo witness` CLI.

Nodes 0-2 found the ledger; node 3 runs as a witness nobody has admitted yet.
The founders propose and vote it in (`vudo witness propose add_witness`,
`vudo witness vote`): it becomes a Raft voter on every replica and replicates
the same state. Then the current leader is voted out by the other three:
it leaves the voters everywhere, the others elect a leader, and once it is
killed the remaining three still commit transfers with one more witness down: 2 of the 3 remaining voters are a
majority, where 2 of 4 (had it stayed a voter) would not be. Waits are
on conditions.
"""

from __future__ import annotations

import json
from typing import Any

from test_credits_bank import DEADLINE, found, leader_of, local_summary

from cluster import LocalCluster, NodeProc, run_vudo, wait_for

U = 1_000_000


def vudo_json(node: NodeProc, *args: str) -> Any:
    """Run a `vudo` command against ``node`` with --json; fail with its output if it fails."""
    result = run_vudo(*args, "--api", node.api, "--data-dir", str(node.data_dir), "--json", timeout=90.0)
    assert result.returncode == 0, f"vudo {' '.join(args)} on {node}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def decide(proposer: NodeProc, voters: list[NodeProc], action: str, target: str) -> dict[str, Any]:
    """A proposal by ``proposer`` and an approving vote by each of ``voters``; returns the proposal after the last vote."""
    proposal = vudo_json(proposer, "witness", "propose", action, target)
    shown: dict[str, Any] = {}
    for voter in voters:
        shown = vudo_json(voter, "witness", "vote", proposal["id"])
    return shown


def voters_everywhere(nodes: list[NodeProc], expected: set[str]) -> bool:
    summaries = [local_summary(n) for n in nodes]
    return all(s is not None and set(s["voters"]) == expected for s in summaries)


def same_state(nodes: list[NodeProc]) -> bool:
    summaries = [local_summary(n) for n in nodes]
    if any(s is None for s in summaries):
        return False
    return len({(s["state_hash"], s["last_applied"]) for s in summaries if s is not None}) == 1


def test_witnesses_are_voted_in_and_out_through_the_cli(make_cluster: Any) -> None:
    cluster: LocalCluster = make_cluster(4)
    for node in cluster.nodes:
        node.argv += ["--witness"]
    cluster.start()
    founders, joiner = cluster.nodes[:3], cluster.nodes[3]
    found(cluster, founders)
    founder_ids = {n.node_id for n in founders}
    assert local_summary(joiner) is not None and local_summary(joiner)["voters"] == []  # type: ignore[index]

    # Voted in: two approvals of three are not enough (0.667 < 0.67), the third passes it.
    shown = decide(founders[0], founders[:2], "add_witness", joiner.node_id)
    assert shown["state"] == "pending", shown
    shown = vudo_json(founders[2], "witness", "vote", shown["id"])
    assert shown["state"] == "approved", shown
    everyone = {*founder_ids, joiner.node_id}
    wait_for(lambda: voters_everywhere(cluster.nodes, everyone), timeout=DEADLINE,
             what="the new witness to be a voter on every replica", diagnostics=cluster.diagnostics)
    moved = vudo_json(joiner, "credits", "transfer", founders[0].node_id, "2.5", "--memo", "from the new witness")
    assert moved["status"] == "committed", moved
    wait_for(lambda: same_state(cluster.nodes), timeout=DEADLINE, what="all four replicas to hold the same state",
             diagnostics=cluster.diagnostics)
    status = vudo_json(joiner, "witness", "status")
    assert status["state"] in ("leader", "follower") and joiner.node_id in status["voters"]

    # The current leader is voted out by the other three (3 of 4 = 0.75 >= 0.67): it steps down and
    # the others elect a leader among themselves.
    gone = wait_for(lambda: leader_of(cluster.nodes), timeout=DEADLINE, what="a leader", diagnostics=cluster.diagnostics)
    stay = [n for n in cluster.nodes if n is not gone]
    shown = decide(stay[0], stay, "remove_witness", gone.node_id)
    assert shown["state"] == "approved", shown
    remaining = everyone - {gone.node_id}
    wait_for(lambda: voters_everywhere(stay, remaining), timeout=DEADLINE,
             what="the removed witness to leave the voters on every remaining replica", diagnostics=cluster.diagnostics)
    wait_for(lambda: leader_of(stay), timeout=DEADLINE, what="a leader among the remaining witnesses",
             diagnostics=cluster.diagnostics)
    # Then it and one more are down. Were it still a voter, 2 of 4 would be no quorum;
    # with it removed, 2 of 3 are a majority and commit (after electing a leader if it was one of them).
    gone.kill()
    down = stay.pop(1)
    down.kill()
    before = vudo_json(stay[0], "credits", "balance", founders[0].node_id, "--local")

    def transfer() -> dict[str, Any] | None:
        result = run_vudo("credits", "transfer", founders[0].node_id, "1", "--id", "after-removal", "--memo", "2 of 3",
                          "--api", stay[1].api, "--data-dir", str(stay[1].data_dir), "--json", timeout=90.0)
        return json.loads(result.stdout) if result.returncode == 0 else None

    moved = wait_for(transfer, timeout=DEADLINE, what="a transfer to commit with 2 of the 3 remaining witnesses up",
                     diagnostics=cluster.diagnostics, interval=1.0)
    assert moved["status"] in ("committed", "exists"), moved
    wait_for(lambda: same_state(stay), timeout=DEADLINE, what="the two running replicas to agree",
             diagnostics=cluster.diagnostics)
    after = vudo_json(stay[0], "credits", "balance", founders[0].node_id, "--local")
    assert after["balance"] == before["balance"] + 1 * U
    accounts = vudo_json(stay[1], "credits", "balance", "--all")
    assert sum(a["balance"] for a in accounts["accounts"]) + accounts["pool"] == accounts["total_minted"]
