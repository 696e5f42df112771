"""Bit-exact emulator of conifer's BDT firmware, vectorised over samples and trees.

The manifest (exported by ``fpgaflow synth``) holds the trees as arrays — feature,
threshold and leaf value as raw fixed-point integers, children — together with the
types and the way the firmware combines tree scores.  The emulator reproduces:

- the input port: floats cast into ``input`` type (the ``double`` constructor);
- the node comparison: conifer multiplies the input by a one-hot weight held in the
  ``weight`` type and accumulates it in the input type before comparing it, exactly
  (ap_fixed compares values, not bits), with the threshold using ``<`` (xgboost) or
  ``<=`` (sklearn);
- the leaf score, already quantised into the ``score`` type;
- the sum over trees in the firmware's order, each partial sum cast into the ``sum``
  type (``balanced``: the HLS ``reduce`` template, left half = largest power of two
  below N, then ``init_predict`` added; ``pairwise``: the VHDL ``AddReduce``, adjacent
  pairs with zero padding, ``init_predict`` as the last operand; ``sequential``:
  ``init_predict`` first, then tree by tree as conifer's C++ and rolled HLS code do);
- the final multiplication by the normalisation.

With a wrapping sum type every order gives the same bits (modular arithmetic), and
the emulator takes that shortcut; with saturation it follows the order literally.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.emulator import Prediction
from sim.fixed import Fixed, FixedType
from sim.manifest import Manifest, ManifestError

ORDERS = ("balanced", "pairwise", "sequential")
SPLITS = ("<", "<=")
CHUNK = 16_384  # samples per block: keeps the (trees x samples) work arrays cache-sized


def _floorlog2(x: int) -> int:
    return 0 if x < 2 else 1 + _floorlog2(x // 2)


def balanced_split(n: int) -> int:
    """Size of the left half in conifer's HLS ``reduce<T, N>``: the largest power of two below N."""
    return 1 << _floorlog2(n - 1)


MAX_COMPARE_BITS = 62  # an input and a threshold, aligned, compared as int64 with room for the shift


def compare_bits(input_type: FixedType, threshold_type: FixedType) -> int:
    """Bits an input and a threshold need once aligned on the finer of their LSBs, as the
    emulator compares them (ap_fixed compares values)."""
    frac = max(input_type.frac_bits, threshold_type.frac_bits)
    return max(t.width + frac - t.frac_bits for t in (input_type, threshold_type))


class BDT:
    """Emulator of one BDT firmware (an :class:`sim.emulator.Emulator`)."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self.id: str = manifest.id
        meta = manifest.meta
        f = manifest.field
        self.input_type = FixedType.parse(f("types", "input"))
        self.threshold_type = FixedType.parse(f("types", "threshold"))
        self.score_type = FixedType.parse(f("types", "score"))
        weight = f("types", "weight")  # None: no one-hot weight multiply (the VHDL backend)
        self.weight_type = FixedType.parse(weight) if weight is not None else None
        self.sum_type = FixedType.parse(f("types", "sum"))
        self.output_type = self.sum_type
        if not self.sum_type.signed and self.sum_type.width == 64:  # a score past 2**63 overflowed deep inside
            raise ManifestError(f"{manifest.path}: sum type {self.sum_type}: 64-bit unsigned scores are not supported")
        self.n_features = int(f("n_features"))
        self.n_outputs = int(f("n_outputs"))
        self.n_trees = int(f("n_trees"))
        self.splitting = f("splitting_convention")
        if self.splitting not in SPLITS:
            raise ManifestError(f"{manifest.path}: splitting_convention {self.splitting!r} is not one of {SPLITS}")
        self.order = f("reduction", "order")
        if self.order not in ORDERS:
            raise ManifestError(f"{manifest.path}: reduction.order {self.order!r} is not one of {ORDERS}")
        self.normalise = bool(f("reduction", "normalise"))
        self.input_shape = (self.n_features,)
        self.output_shape = (self.n_outputs,)
        self.meta: dict[str, Any] = meta
        self._load_trees(manifest)

    # ------------------------------------------------------------------ loading
    def _load_trees(self, m: Manifest) -> None:
        feature = m.array("feature")
        threshold = m.array("threshold_raw").astype(np.int64)
        value = m.array("value_raw").astype(np.int64)
        left = m.array("children_left")
        right = m.array("children_right")
        n_nodes = m.array("n_nodes")
        shape = (self.n_trees, self.n_outputs)
        for name, a in (("feature", feature), ("threshold_raw", threshold), ("value_raw", value)):
            if a.shape[:2] != shape:
                raise ManifestError(f"{m.path}: array '{name}' has shape {a.shape}, expected {shape} + (nodes,)")
        self.init_raw = m.array("init_predict_raw").astype(np.int64).reshape(self.n_outputs)
        self.norm_raw = int(m.array("norm_raw").reshape(()))
        # Compare in a common number of fractional bits: ap_fixed compares values.
        self.compare_frac = max(self.input_type.frac_bits, self.threshold_type.frac_bits)
        self._compare_bits = compare_bits(self.input_type, self.threshold_type)
        if self._compare_bits > MAX_COMPARE_BITS:
            raise ManifestError(f"{m.path}: input/threshold types too wide for the emulator's 64-bit comparisons")
        thr = threshold << (self.compare_frac - self.threshold_type.frac_bits)

        # Flatten every (tree, output) into one node table.  Children of a node are
        # stored next to each other, so the next node is ``left[node] + (not go_left)``;
        # a leaf points to itself and always "goes left", so walking past it is harmless.
        feats, thrs, lefts, vals, roots = [], [], [], [], []
        offset = 0
        self.max_depth = 0
        sentinel = np.iinfo(np.int64).max
        for t in range(self.n_trees):
            for c in range(self.n_outputs):
                n = int(n_nodes[t, c])
                fe, lc, rc = feature[t, c, :n], left[t, c, :n], right[t, c, :n]
                order = self._pair_children(fe, lc, rc, m, t, c)
                pos = np.empty(n, dtype=np.int64)
                pos[order] = np.arange(n)
                leaf = lc[order] < 0
                # conifer's padding (VHDL, rolled HLS) gives leaves children but keeps feature -2:
                # such a node "compares true", so it always goes left, as the firmware does
                always_left = fe[order] < 0
                new_left = np.where(leaf, np.arange(n), pos[np.where(leaf, 0, lc[order])]) + offset
                feats.append(np.where(always_left, 0, fe[order]))
                thrs.append(np.where(always_left, sentinel, thr[t, c, :n][order]))
                lefts.append(new_left)
                vals.append(value[t, c, :n][order])
                roots.append(offset + pos[0])
                offset += n
        self._feature = np.concatenate(feats).astype(np.intp)
        thr_all = np.concatenate(thrs)
        # int32 comparisons where the aligned values fit: half the memory traffic of the walk
        narrow = self._compare_bits < 31
        dtype = np.int32 if narrow else np.int64
        self._threshold = np.minimum(thr_all, np.iinfo(dtype).max).astype(dtype)
        self._left = np.concatenate(lefts).astype(np.intp)
        self._value = np.concatenate(vals).astype(np.int64)
        self._roots = np.asarray(roots, dtype=np.intp)
        if self._feature.size and self._feature.max() >= self.n_features:
            raise ManifestError(f"{m.path}: a node uses feature {self._feature.max()} of {self.n_features}")
        self._bitvectors = _Bitvectors.build(self) if self.max_depth > 0 else None
        # conifer's one-hot weight 1.0 as the firmware holds it (not 1.0 if the weight type cannot hold it)
        w = self.weight_type
        exact = w is None or float(w.quantize(1.0)) == 1.0  # then x * 1 cast back is x itself
        self._weight_one = None if exact else Fixed(np.asarray(w.to_raw(1.0)), w)

    def _pair_children(self, fe: np.ndarray, lc: np.ndarray, rc: np.ndarray, m: Manifest, t: int, c: int) -> np.ndarray:
        """Breadth-first node order with each node's children adjacent (left, right)."""
        n = len(fe)
        order = [0]
        depth = {0: 0}
        seen = np.zeros(n, dtype=bool)
        seen[0] = True
        i = 0
        while i < len(order):
            node = order[i]
            i += 1
            if lc[node] < 0:
                continue
            for child in (lc[node], rc[node]):
                if not 0 <= child < n or seen[child]:
                    raise ManifestError(f"{m.path}: tree {t} output {c}: node {node} has a bad child {child}")
                seen[child] = True
                depth[int(child)] = depth[node] + 1
                order.append(int(child))
        self.max_depth = max(self.max_depth, max(depth.values()))
        if len(order) != n:
            raise ManifestError(f"{m.path}: tree {t} output {c}: {n - len(order)} nodes are unreachable")
        return np.asarray(order, dtype=np.int64)

    # --------------------------------------------------------------- prediction
    def predict(self, x: np.ndarray) -> Prediction:
        x = self._check(np.asarray(x), "inputs")
        return self.predict_raw(input_raw(x, self.input_type))

    def predict_raw(self, x_raw: np.ndarray) -> Prediction:
        x_raw = self._check(np.asarray(x_raw), "raw inputs")
        if x_raw.dtype.kind not in "iu":
            raise ValueError(f"raw inputs must be integers of {self.input_type}, got dtype {x_raw.dtype}")
        t = self.input_type
        if x_raw.size and (x_raw.min() < t.min_raw or x_raw.max() > t.max_raw):
            raise ValueError(f"raw inputs outside the range of {t} ({t.min_raw}..{t.max_raw})")
        out = np.empty((len(x_raw), self.n_outputs), dtype=np.int64)
        for start in range(0, len(x_raw), CHUNK):
            out[start : start + CHUNK] = self._scores(x_raw[start : start + CHUNK].astype(np.int64))
        return Prediction(out, self.sum_type.from_raw(out))

    def _check(self, x: np.ndarray, what: str) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"{what} have shape {x.shape}; this BDT ({self.id}) takes {self.n_features} features per "
                f"sample, i.e. an array of shape (n_samples, {self.n_features})"
            )
        return x

    def leaf_values(self, x_raw: np.ndarray) -> np.ndarray:
        """Raw score of every tree: shape (samples, trees, outputs)."""
        xa = self._node_inputs(x_raw)
        if self._bitvectors is not None:
            return self._bitvectors.leaf_values(xa)
        return self._walk(xa)

    def _walk(self, xa: np.ndarray) -> np.ndarray:
        """Leaves by walking every tree level by level (for trees of more than 64 leaves)."""
        n = len(xa)
        xa = xa.ravel()
        base = (np.arange(n, dtype=np.intp) * self.n_features)[:, None]
        nodes = np.broadcast_to(self._roots, (n, len(self._roots))).copy()
        right_if_equal = self.splitting == "<"  # x < t goes left, so x == t goes right
        for _ in range(self.max_depth):
            # mode="wrap" only skips numpy's bounds checks: every index is in range by construction
            f = np.take(self._feature, nodes, mode="wrap")
            f += base
            xv = np.take(xa, f, mode="wrap")
            thr = np.take(self._threshold, nodes, mode="wrap")
            nodes = np.take(self._left, nodes, mode="wrap")
            nodes += (xv >= thr) if right_if_equal else (xv > thr)
        return np.take(self._value, nodes).reshape(n, self.n_trees, self.n_outputs)

    def _node_inputs(self, x_raw: np.ndarray) -> np.ndarray:
        """What each node compares: the input, through conifer's weight, in compare units."""
        node_in = x_raw
        if self._weight_one is not None:  # accumulation (input type) += x * weight, as the C++ does
            node_in = (Fixed(x_raw, self.input_type) * self._weight_one).cast(self.input_type).raw
        xa = np.asarray(node_in, dtype=np.int64) << (self.compare_frac - self.input_type.frac_bits)
        return xa.astype(self._threshold.dtype)

    def _scores(self, x_raw: np.ndarray) -> np.ndarray:
        leaves = self.leaf_values(x_raw)
        total = self._reduce(leaves)
        if self.normalise:
            norm = Fixed(np.asarray(self.norm_raw), self.score_type)
            total = (Fixed(total, self.sum_type) * norm).cast(self.sum_type).raw
        return np.asarray(total, dtype=np.int64)

    # ---------------------------------------------------------------- reduction
    @property
    def sum_wraps(self) -> bool:
        """True when every partial sum wraps: then the order of the sum cannot matter."""
        s = self.sum_type
        fits = s.width + (self.n_trees + 1).bit_length() < 62  # the plain int64 sum cannot overflow
        return s.overflow == "AP_WRAP" and s.sat_bits == 0 and s.frac_bits == self.score_type.frac_bits and fits

    def _reduce(self, leaves: np.ndarray) -> np.ndarray:
        """Sum of tree scores and init_predict in the firmware's order, shape (samples, outputs)."""
        init = np.broadcast_to(self.init_raw, leaves.shape[:1] + self.init_raw.shape)
        if self.sum_wraps:
            # modular arithmetic: every order gives these bits
            return _wrap(leaves.sum(axis=1) + init, self.sum_type)
        add = self._add
        if self.order == "sequential":
            acc = init
            for t in range(leaves.shape[1]):
                acc = add(acc, leaves[:, t])
            return acc
        if self.order == "balanced":
            return add(init, self._balanced(leaves))
        operands = np.concatenate([leaves, init[:, None, :]], axis=1)
        return self._pairwise(operands)

    def _add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (Fixed(a, self.sum_type) + Fixed(b, self.sum_type)).cast(self.sum_type).raw

    def _balanced(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[1]
        if n == 1:
            return x[:, 0]
        if n == 2:
            return self._add(x[:, 0], x[:, 1])
        left = balanced_split(n)
        return self._add(self._balanced(x[:, :left]), self._balanced(x[:, left:]))

    def _pairwise(self, x: np.ndarray) -> np.ndarray:
        while x.shape[1] > 1:
            if x.shape[1] % 2:
                x = np.concatenate([x, np.zeros_like(x[:, :1])], axis=1)
            x = self._add(x[:, 0::2], x[:, 1::2])
        return x[:, 0]


def _wrap(raw: np.ndarray, t: FixedType) -> np.ndarray:
    """Keep the low W bits (two's complement): what a wrapping adder chain leaves."""
    u = raw & ((1 << t.width) - 1)
    if t.signed:
        u = np.where(u >= (1 << (t.width - 1)), u - (1 << t.width), u)
    return u


def input_raw(x: np.ndarray, t: FixedType) -> np.ndarray:
    """Floats cast into the input type as its ``double`` constructor does.

    The common modes (AP_TRN or AP_RND with AP_WRAP or AP_SAT) take a direct route:
    ``x * 2**F`` is exact in float64, so below 2**52 its ``floor`` is the exact
    truncated value; AP_RND adds 1 where the fraction ``y - floor(y)`` (exact for every
    double) is at least 1/2.  Not ``floor(y + 0.5)``: that sum rounds, so
    y = 0.5 - 2**-54 would give 1.  Then the W bits are wrapped or clipped.  Everything
    else goes through :mod:`sim.fixed`'s full port of the constructor."""
    x = np.asarray(x, dtype=np.float64)
    fast = (
        t.quantization in ("AP_TRN", "AP_RND")
        and t.overflow in ("AP_WRAP", "AP_SAT")
        and t.sat_bits == 0
        and not t.integer
        and t.frac_bits >= 0
        and t.width <= 52
    )
    if fast:
        scaled = np.ldexp(x, t.frac_bits)
        with np.errstate(invalid="ignore"):
            fast = bool(np.all(np.abs(scaled) < 2.0**52))  # also False for NaN and inf
    if not fast:
        return t.to_raw(x)
    low = np.floor(scaled)
    if t.quantization == "AP_RND":
        low += (scaled - low) >= 0.5  # the rounding bit, exactly
    raw = low.astype(np.int64)
    if t.overflow == "AP_SAT":
        return np.clip(raw, t.min_raw, t.max_raw)
    return _wrap(raw, t)


class _Bitvectors:
    """Leaf finding without walking (the QuickScorer idea): each tree keeps a bitvector
    of its still-possible leaves, numbered left to right; every node whose comparison
    sends the sample right clears the leaves of its left subtree; the exit leaf is the
    lowest bit left.  One vectorised compare per node over all samples instead of one
    gather chain per sample and level: same leaves as the walk, several times faster."""

    MAX_LEAVES = 64

    def __init__(self, bdt: BDT, nodes: list[tuple[int, int, int, int]], leaves: np.ndarray, width: int):
        self.bdt = bdt
        self.dtype = {8: np.uint8, 16: np.uint16, 64: np.uint64}[width]
        self.all_ones = np.iinfo(self.dtype).max
        nodes.sort(key=lambda n: (n[1], n[2]))  # equal (feature, threshold) share one compare
        self.tree = np.asarray([n[0] for n in nodes], dtype=np.intp)
        self.feature = [n[1] for n in nodes]
        self.threshold = [n[2] for n in nodes]
        self.keep = [self.dtype(n[3]) for n in nodes]  # leaves under the left child
        self.leaves = leaves  # (trees, max leaves) raw scores
        if width <= 16:
            low = np.zeros(1 << width, dtype=np.uint8)  # small enough to stay in cache
            v = np.arange(1, 1 << width)
            low[1:] = np.log2(v & -v).astype(np.uint8)
            self.lowest = low

    @classmethod
    def build(cls, bdt: BDT) -> _Bitvectors | None:
        left, feature, thr = bdt._left, bdt._feature, bdt._threshold
        sentinel = np.iinfo(thr.dtype).max
        nodes: list[tuple[int, int, int, int]] = []
        values: list[list[int]] = []
        for k, root in enumerate(bdt._roots):
            tree_leaves: list[int] = []

            def visit(node: int, k: int = k, tree_leaves: list[int] = tree_leaves) -> int:
                """In-order leaf numbering; returns the mask of leaves under ``node``."""
                if left[node] == node:
                    tree_leaves.append(int(bdt._value[node]))
                    return 1 << (len(tree_leaves) - 1)
                under_left = visit(int(left[node]), k, tree_leaves)
                under_right = visit(int(left[node]) + 1, k, tree_leaves)
                if thr[node] != sentinel:  # padding nodes always go left: nothing to clear
                    nodes.append((k, int(feature[node]), int(thr[node]), under_left))
                return under_left | under_right

            visit(int(root))
            if len(tree_leaves) > cls.MAX_LEAVES:
                return None
            values.append(tree_leaves)
        widest = max(len(v) for v in values)
        width = 8 if widest <= 8 else 16 if widest <= 16 else 64
        table = np.zeros((len(values), widest), dtype=np.int64)
        for k, v in enumerate(values):
            table[k, : len(v)] = v
        return cls(bdt, nodes, table, width)

    def leaf_values(self, xa: np.ndarray) -> np.ndarray:
        """Raw score of every tree for inputs in compare units: (samples, trees, outputs)."""
        n = len(xa)
        columns = np.ascontiguousarray(xa.T)
        bits = np.full((len(self.leaves), n), self.all_ones, dtype=self.dtype)
        right_if_equal = self.bdt.splitting == "<"
        last = None
        go_right = None
        for k, f, t, keep in zip(self.tree, self.feature, self.threshold, self.keep, strict=True):
            if (f, t) != last:
                go_right = (columns[f] >= t) if right_if_equal else (columns[f] > t)
                last = (f, t)
            # the left subtree's leaves, where the sample went right
            clear = np.multiply(go_right.view(np.uint8), keep, dtype=self.dtype)
            np.invert(clear, out=clear)
            bits[k] &= clear
        if self.dtype == np.uint64:
            low = bits & (~bits + np.uint64(1))
            leaf = (np.frexp(low.astype(np.float64))[1] - 1).astype(np.intp)
        else:
            leaf = self.lowest[bits]
        width = self.leaves.shape[1]
        flat = (np.arange(len(self.leaves), dtype=np.intp) * width)[:, None] + leaf
        scores = np.take(self.leaves.ravel(), flat)  # (trees, samples)
        return scores.T.reshape(n, self.bdt.n_trees, self.bdt.n_outputs)
