"""Rule specs and the consistent-update plan, checked by simulating the switches' tables."""
from __future__ import annotations

import random
from typing import Dict, Optional, Sequence, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.ecmp import FiveTuple
from controller.fabric import Fabric, FabricError
from controller.rules import (DEFAULT_DRAIN_S, OP_ADD, OP_BARRIER, OP_DELETE, PRIORITY_FLOW, RuleOp,
                              RuleSpec, consistent_update, cookie_version, is_sidestep_cookie,
                              make_cookie, path_rules)
from mininet_topos.fattree_spec import fat_tree

Table = Dict[str, RuleSpec]  # switch -> the flow's rule there (one match per flow)


def fat(k: int) -> Fabric:
    return Fabric.from_spec(fat_tree(k, 10))


def install(rules: Sequence[RuleSpec]) -> Table:
    return {r.switch: r for r in rules}


def apply_op(table: Table, op: RuleOp) -> None:
    """OpenFlow semantics the app relies on: ADD replaces an equal match+priority entry;
    DELETE_STRICT with a full cookie mask removes only the entry with that cookie."""
    if op.kind == OP_ADD:
        table[op.switch] = op.spec
    elif op.kind == OP_DELETE:
        cur = table.get(op.switch)
        if cur is not None and cur.cookie == op.spec.cookie and cur.match == op.spec.match \
                and cur.priority == op.spec.priority:
            del table[op.switch]


def walk(fabric: Fabric, table: Table, src: str, dst: str) -> Optional[Tuple[str, ...]]:
    """Follow the installed rules from the source host; None on a hole or a loop."""
    node, _ = fabric.host_edge(src)
    hops = [src, node]
    while True:
        rule = table.get(node)
        if rule is None:
            return None
        nxt = fabric.neighbor(node, rule.out_port)
        if nxt is None or not fabric.is_up(node, nxt):
            return None
        if nxt == dst:
            return tuple(hops + [dst])
        if nxt in hops or not fabric.is_switch(nxt):
            return None
        hops.append(nxt)
        node = nxt


def two_paths(fabric: Fabric, rnd: random.Random) -> Tuple[FiveTuple, Tuple[str, ...], Tuple[str, ...]]:
    hosts = fabric.hosts()
    while True:
        src, dst = rnd.sample(hosts, 2)
        paths = fabric.paths(src, dst)
        if len(paths) > 1:
            old, new = rnd.sample(paths, 2)
            return FiveTuple(src, dst, rnd.choice([6, 17]), rnd.randint(1, 65535), 5001), old, new


@settings(max_examples=40, deadline=None)
@given(k=st.sampled_from([4, 6]), seed=st.integers(0, 10 ** 6), rewrite=st.booleans(),
       version=st.integers(1, 70000))
def test_consistent_update_never_leaves_a_hole(k, seed, rewrite, version):
    fabric = fat(k)
    rnd = random.Random(seed)
    flow, old, new = two_paths(fabric, rnd)
    table = install(path_rules(fabric, flow, old, version - 1))
    ops = consistent_update(fabric, flow, old, new, version, rewrite_unchanged=rewrite)
    ingress = new[1]
    adds = [op for op in ops if op.kind == OP_ADD]
    assert adds[-1].switch == ingress and sum(op.switch == ingress for op in adds) == 1
    # Every add is followed by a barrier on the same switch.
    for i, op in enumerate(ops):
        if op.kind == OP_ADD:
            assert ops[i + 1].kind == OP_BARRIER and ops[i + 1].switch == op.switch
    # Deletes come last, only on switches the new path does not use, after the drain.
    kinds = [op.kind for op in ops]
    first_delete = kinds.index(OP_DELETE) if OP_DELETE in kinds else len(kinds)
    assert all(kind == OP_DELETE for kind in kinds[first_delete:])
    assert {op.switch for op in ops[first_delete:]} == set(old[1:-1]) - set(new[1:-1])
    assert all(op.delay_s == DEFAULT_DRAIN_S for op in ops[first_delete:])
    assert all(op.delay_s == 0 for op in ops[:first_delete])

    expected_new = {r.switch: r for r in path_rules(fabric, flow, new, version)}
    for op in ops:
        if op.kind == OP_ADD and op.switch == ingress:
            # The moment the ingress flips: every switch on the new path forwards the new way.
            for sw in new[2:-1]:
                assert table[sw].out_port == expected_new[sw].out_port, sw
        apply_op(table, op)
        # At every step some packet entering now reaches the destination without a loop.
        path = walk(fabric, table, flow.src, flow.dst)
        assert path is not None, (op, table)
    assert walk(fabric, table, flow.src, flow.dst) == tuple(new)
    assert set(table) == set(new[1:-1])
    if rewrite:
        assert all(cookie_version(r.cookie) == version & 0xFFFF for r in table.values())


def test_consistent_update_after_link_failure():
    """The old path crosses the dead link: its rules still get deleted, by cookie."""
    fabric = fat(4)
    flow = FiveTuple("h1", "h16", 6, 1, 2)
    old = ("h1", "e0_0", "a0_0", "c0", "a3_0", "e3_1", "h16")
    new = ("h1", "e0_0", "a0_1", "c2", "a3_1", "e3_1", "h16")
    fabric.set_link_up("a0_0", "c0", False)
    ops = consistent_update(fabric, flow, old, new, 7)
    deleted = [op.spec for op in ops if op.kind == OP_DELETE]
    assert {r.switch for r in deleted} == {"a0_0", "c0", "a3_0"}
    assert all(cookie_version(r.cookie) == 6 for r in deleted)
    assert [op.switch for op in ops if op.kind == OP_ADD][-1] == "e0_0"


def test_delete_never_hits_a_newer_rule():
    fabric = fat(4)
    flow = FiveTuple("h1", "h16", 6, 1, 2)
    a, b = fabric.paths("h1", "h16")[0], fabric.paths("h1", "h16")[3]
    table = install(path_rules(fabric, flow, a, 1))
    there = consistent_update(fabric, flow, a, b, 2)
    back = consistent_update(fabric, flow, b, a, 3)
    # The flow moves back before the first move's drain delay expires: run the stale deletes last.
    for op in [o for o in there if o.kind != OP_DELETE] + back + [o for o in there if o.kind == OP_DELETE]:
        apply_op(table, op)
    assert walk(fabric, table, "h1", "h16") == tuple(a)


def test_same_path_is_a_no_op_and_bad_inputs_are_refused():
    fabric = fat(4)
    flow = FiveTuple("h1", "h16")
    p = fabric.paths("h1", "h16")[0]
    assert consistent_update(fabric, flow, p, p, 2) == []
    with pytest.raises(FabricError):
        consistent_update(fabric, flow, p, ("h1", "e0_0", "h16"), 2)
    with pytest.raises(FabricError):
        consistent_update(fabric, flow, ("h2",) + p[1:], p, 2)
    with pytest.raises(ValueError, match="drain_s"):
        consistent_update(fabric, flow, p, fabric.paths("h1", "h16")[1], 2, drain_s=-1)
    with pytest.raises(ValueError, match="same cookie"):
        consistent_update(fabric, flow, p, fabric.paths("h1", "h16")[1], 2, old_version=2)


def test_rule_op_validation():
    spec = RuleSpec("e0_0", (("eth_type", 0x0800),), 3)
    RuleOp(OP_ADD, spec, "e0_0")
    with pytest.raises(ValueError):
        RuleOp("modify", spec, "e0_0")
    with pytest.raises(ValueError):
        RuleOp(OP_BARRIER, spec, "e0_0")
    with pytest.raises(ValueError):
        RuleOp(OP_ADD, spec, "e0_1")
    with pytest.raises(ValueError):
        RuleOp(OP_DELETE, spec, "e0_0", delay_s=-1)


def test_path_rules_are_egress_first_with_cookies():
    fabric = fat(4)
    flow = FiveTuple("h1", "h16", 17, 4791, 4791)
    p = fabric.paths("h1", "h16")[0]
    rules = path_rules(fabric, flow, p, 5)
    assert [r.switch for r in rules] == list(reversed(p[1:-1]))
    assert all(r.priority == PRIORITY_FLOW and r.cookie == make_cookie(flow, 5) for r in rules)
    assert is_sidestep_cookie(rules[0].cookie)
    assert dict(rules[0].match)["udp_dst"] == 4791
