"""conifer's ensemble dictionary (what its converters produce and its backends take),
built and checked on our side: compact trees, the true depth, a float evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

LEAF = -2  # conifer's (and sklearn's) feature index of a leaf
NO_CHILD = -1


def make_tree(feature, threshold, value, left, right, n_features: int) -> dict[str, list]:
    """One conifer tree dict, reachable nodes only, renumbered breadth-first.

    Unreachable nodes (xgboost keeps pruned ones) must go: conifer's HLS code decides
    leaf activity from ``parent[]`` and would let a stray leaf win.  A split on an
    infinite threshold is replaced by the child every number goes to: sklearn's trees
    fitted on data with NaN split the missing values off with ``x <= inf`` (only NaN
    goes right), which the fixed-point firmware cannot carry, and an ``inf`` threshold
    would reach conifer's C++ and the probe inputs' ranges."""
    feature, left, right = (np.asarray(a, dtype=np.int64) for a in (feature, left, right))
    threshold, value = np.asarray(threshold, dtype=np.float64), np.asarray(value, dtype=np.float64)

    def kept(node: int) -> int:
        while left[node] != NO_CHILD and np.isinf(threshold[node]):
            node = int(left[node] if threshold[node] > 0 else right[node])
        return node

    children = {}  # node: its children, past the infinite splits

    def kids(node: int) -> tuple[int, int] | None:
        if left[node] == NO_CHILD:
            return None
        children[node] = (kept(int(left[node])), kept(int(right[node])))
        return children[node]

    order = _breadth_first(kept(0), kids)
    new = {old: k for k, old in enumerate(order)}
    leaf = [left[o] == NO_CHILD for o in order]
    feat = [LEAF if lf else int(feature[o]) for o, lf in zip(order, leaf, strict=False)]
    return {
        "feature": feat,
        "threshold": [LEAF * 1.0 if lf else float(threshold[o]) for o, lf in zip(order, leaf, strict=False)],
        "value": [float(value[o]) if lf else 0.0 for o, lf in zip(order, leaf, strict=False)],  # only leaves score
        "children_left": [NO_CHILD if lf else new[children[o][0]] for o, lf in zip(order, leaf, strict=False)],
        "children_right": [NO_CHILD if lf else new[children[o][1]] for o, lf in zip(order, leaf, strict=False)],
        "weight": [[0] * n_features if f < 0 else [int(j == f) for j in range(n_features)] for f in feat],
    }


def _breadth_first(root: int, children: Callable[[int], tuple[int, int] | None]) -> list[int]:
    """The nodes reachable from ``root``, breadth-first (``children``: a node's two, or None
    for a leaf): the order conifer's HLS trees need, parents before their children."""
    order, i = [root], 0
    while i < len(order):
        pair = children(order[i])
        i += 1
        if pair is not None:
            order += pair
    return order


def parents_first(tree: dict[str, list]) -> dict[str, list]:
    """The tree with its nodes renumbered breadth-first if a node comes before its parent.

    conifer's HLS trees decide a node's activity from its parent's in one pass in node
    order, then take the first active leaf: a node numbered before its parent reads an
    activity not yet set (firmware scores of 0 where conifer's cpp, walking, is right).
    Every converter numbers parents first; a conifer JSON need not."""
    left, right = tree["children_left"], tree["children_right"]
    if all(c == NO_CHILD or c > node for node, pair in enumerate(zip(left, right, strict=True)) for c in pair):
        return tree
    order = _breadth_first(0, lambda node: None if left[node] == NO_CHILD else (left[node], right[node]))
    new = {old: k for k, old in enumerate(order)}
    renumbered = {**tree, **{key: [tree[key][o] for o in order] for key in TREE_FIELDS}}  # the fields conifer reads
    for key in ("children_left", "children_right"):
        renumbered[key] = [NO_CHILD if c == NO_CHILD else new[c] for c in renumbered[key]]
    return renumbered


def tree_depth(tree: dict[str, list]) -> int:
    depth = {0: 0}
    for node, (lc, rc) in enumerate(zip(tree["children_left"], tree["children_right"], strict=False)):
        if lc != NO_CHILD:
            depth[lc] = depth[rc] = depth[node] + 1
    return max(depth.values())


def make_ensemble(
    trees: list[list[dict]], n_features: int, n_classes: int, init_predict: list[float], library: str, split: str
) -> dict[str, Any]:
    """``trees[i][k]``: tree i of output k.  ``n_classes`` follows conifer: 2 means one output."""
    return {
        "max_depth": max((tree_depth(t) for ts in trees for t in ts), default=0),
        "n_trees": len(trees),
        "n_classes": n_classes,
        "n_features": n_features,
        "trees": trees,
        "init_predict": [float(v) for v in init_predict],
        "norm": 1,
        "library": library,
        "splitting_convention": split,
        "feature_map": {f"f{i}": i for i in range(n_features)},
    }


def n_outputs(ensemble: dict[str, Any]) -> int:
    return 1 if ensemble["n_classes"] == 2 else int(ensemble["n_classes"])


def float_decision_function(ensemble: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The ensemble in float64 (what conifer's python backend computes), shape (n, outputs);
    vectorised over samples so that ``verify`` can check conversions on 10,000 inputs."""
    x = np.asarray(x, dtype=np.float64)
    less_equal = ensemble["splitting_convention"] == "<="
    out = np.tile(np.asarray(ensemble["init_predict"], dtype=np.float64), (len(x), 1))
    rows = np.arange(len(x))
    for trees in ensemble["trees"]:
        for k, t in enumerate(trees):
            feat, thr = np.asarray(t["feature"]), np.asarray(t["threshold"])
            left, right = np.asarray(t["children_left"]), np.asarray(t["children_right"])
            node = np.zeros(len(x), dtype=np.int64)
            for _ in range(tree_depth(t)):
                inner = left[node] != NO_CHILD
                xv = x[rows, np.maximum(feat[node], 0)]
                go_left = xv <= thr[node] if less_equal else xv < thr[node]
                node = np.where(inner, np.where(go_left, left[node], right[node]), node)
            out[:, k] += np.asarray(t["value"])[node]
    return out * ensemble["norm"]


TREE_FIELDS = ("feature", "threshold", "value", "children_left", "children_right", "weight")
ROLES = {"feature": "split feature", "threshold": "split threshold", "value": "leaf score",
         "children_left": "left child", "children_right": "right child", "weight": "split weights"}  # fmt: skip


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """A finite number: JSON's NaN and Infinity would be written into the firmware's arrays."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_fields(ensemble: dict[str, Any], where: str) -> None:
    """A conifer JSON written by hand or by another tool: the fields its backends and ours
    read, of the kinds they read, refused naming the field (a missing or mistyped one was
    a KeyError or TypeError from deep inside)."""
    for key in ("n_trees", "n_classes", "n_features"):
        if key not in ensemble:
            raise ValueError(f"{where}: missing field '{key}'")
        if not _is_int(ensemble[key]) or ensemble[key] < 1:
            raise ValueError(f"{where}: field '{key}' must be a positive integer, got {ensemble[key]!r}")
    init = ensemble.get("init_predict")
    if not isinstance(init, list) or not all(_is_number(v) for v in init):
        raise ValueError(
            f"{where}: field 'init_predict' must be a list of finite numbers (one per output), got {init!r}"
        )
    if not _is_number(ensemble.get("norm")):
        raise ValueError(f"{where}: field 'norm' must be a finite number, got {ensemble.get('norm')!r}")
    if not isinstance(ensemble.get("library"), str):  # conifer's backends assert it is there
        raise ValueError(
            f"{where}: field 'library' must be the name of the library the trees come from "
            f'(e.g. "sklearn"), got {ensemble.get("library")!r}'
        )
    trees = ensemble.get("trees")
    if not isinstance(trees, list):
        raise ValueError(
            f"{where}: field 'trees' must be a list (per boosting round, a list of one tree per output), "
            f"got {type(trees).__name__}"
        )
    for i, round_trees in enumerate(trees):
        if not isinstance(round_trees, list):
            raise ValueError(
                f"{where}: trees[{i}] must be a list of one tree per output, got {type(round_trees).__name__}"
            )
        for k, t in enumerate(round_trees):
            _check_tree(t, f"{where}: trees[{i}][{k}]")


def _check_tree(t: Any, where: str) -> None:
    if not isinstance(t, dict):
        raise ValueError(f"{where} must be a tree (an object with {', '.join(TREE_FIELDS)}), got {type(t).__name__}")
    for key in TREE_FIELDS:
        if key not in t:
            raise ValueError(f"{where}: missing field '{key}'")
        if not isinstance(t[key], list):
            raise ValueError(f"{where}.{key} must be a list (one entry per node), got {type(t[key]).__name__}")
        kind, ok = (
            ("an integer", _is_int)
            if key in ("feature", "children_left", "children_right")
            else (
                "a list of finite numbers (one per feature)",
                lambda v: isinstance(v, list) and all(map(_is_number, v)),
            )
            if key == "weight"
            else ("a finite number", _is_number)
        )
        bad = next((j for j, v in enumerate(t[key]) if not ok(v)), None)
        if bad is not None:
            raise ValueError(f"{where}.{key}[{bad}] is {t[key][bad]!r}, not {kind} (node {bad}'s {ROLES[key]})")
    lengths = {key: len(t[key]) for key in TREE_FIELDS}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{where}: fields differ in length ({', '.join(f'{k}: {n}' for k, n in lengths.items())})")
    if not lengths["feature"]:
        raise ValueError(f"{where}: a tree of no nodes")
    _check_links(t["children_left"], t["children_right"], where)


def _check_links(left: list[int], right: list[int], where: str) -> None:
    """The children must make one tree rooted at node 0: every index a node of the tree
    (-1 for both children of a leaf), every node reached once.  A child index out of
    range, a cycle or a shared node was a KeyError from deep inside; a node nothing
    points at would be a second root to conifer's HLS firmware (leaf activity from
    ``parent[]``)."""
    n = len(left)
    parent: dict[int, int] = {}
    order = [0]
    for node in order:
        lc, rc = left[node], right[node]
        if (lc == NO_CHILD) != (rc == NO_CHILD):
            raise ValueError(
                f"{where} node {node}: children_left is {lc} but children_right is {rc}; a leaf has -1 for both, "
                "a split neither"
            )
        for key, child in (("children_left", lc), ("children_right", rc)) if lc != NO_CHILD else ():
            if not 0 <= child < n:
                raise ValueError(
                    f"{where}.{key}[{node}] is {child}: node {node}'s child is not a node of the tree "
                    f"(nodes 0 to {n - 1}, -1 for a leaf)"
                )
            if child == 0 or child in parent:
                held = "the root" if child == 0 else f"already the child of node {parent[child]}"
                raise ValueError(
                    f"{where}.{key}[{node}] is {child}: node {node}'s child is {held} (a cycle or a shared node; "
                    "every node but the root has one parent)"
                )
            parent[child] = node
            order.append(child)
    unreachable = [node for node in range(1, n) if node not in parent]
    if unreachable:
        raise ValueError(
            f"{where} node {unreachable[0]}: no node has it as a child, so it is not reachable from the root "
            f"({len(unreachable)} such node(s)); conifer's HLS firmware would take it for a second root"
        )


def validate(ensemble: dict[str, Any], where: str) -> None:
    """Refuse an ensemble conifer would write into broken firmware, naming the tree and node."""
    n_features, outputs = int(ensemble["n_features"]), n_outputs(ensemble)
    if len(ensemble["trees"]) != int(ensemble["n_trees"]):
        raise ValueError(f"{where}: n_trees is {ensemble['n_trees']} but {len(ensemble['trees'])} are given")
    if len(ensemble["init_predict"]) < outputs:
        raise ValueError(f"{where}: init_predict has {len(ensemble['init_predict'])} values for {outputs} outputs")
    for i, trees in enumerate(ensemble["trees"]):
        if len(trees) != outputs:
            raise ValueError(f"{where}: tree {i} has {len(trees)} output trees, expected {outputs}")
        for k, t in enumerate(trees):
            n = len(t["feature"])
            for node, (f, lc, rc) in enumerate(zip(t["feature"], t["children_left"], t["children_right"], strict=True)):
                if lc == NO_CHILD:
                    continue
                if not 0 <= f < n_features:
                    raise ValueError(
                        f"{where}: tree {i} output {k} node {node} splits on feature {f}; "
                        f"the model has {n_features} features"
                    )
                if not (0 < lc < n and 0 < rc < n):
                    raise ValueError(f"{where}: tree {i} output {k} node {node} has children {lc}, {rc} of {n} nodes")
            _check_weights(t, n_features, f"{where}: tree {i} output {k}")


def _check_weights(t: dict[str, list], n_features: int, where: str) -> None:
    """conifer's cpp and HLS backends compare ``sum(x[f] * weight[f])`` with the threshold,
    the VHDL backend, the emulator and the float reference ``x[feature]``: the same only
    for the one-hot of ``feature`` (what every converter writes).  Anything else (an
    oblique split, a weight on another feature) is refused rather than emulated wrong."""
    weight = t["weight"]
    bad = next((node for node, w in enumerate(weight) if len(w) != n_features), None)
    if bad is not None:
        raise ValueError(f"{where} node {bad} has {len(weight[bad])} weights; the model has {n_features} features")
    if not weight:
        return
    w = np.asarray(weight, dtype=np.float64).reshape(len(weight), n_features)
    inner = np.flatnonzero(np.asarray(t["children_left"]) != NO_CHILD)
    feature = np.asarray(t["feature"])[inner]
    one_hot = np.zeros((len(inner), n_features))
    one_hot[np.arange(len(inner)), feature] = 1.0
    wrong = np.flatnonzero(np.any(w[inner] != one_hot, axis=1))
    if wrong.size:
        node = int(inner[wrong[0]])
        f = t["feature"][node]
        raise ValueError(
            f"{where} node {node} splits on feature {f} with weight {weight[node]}, not the one-hot of "
            f"feature {f}: oblique or mismatched split weights are not supported (the emulator, like "
            "conifer's VHDL, compares x[feature])"
        )
