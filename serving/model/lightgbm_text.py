"""LightGBM's text model (`model.txt`) read without LightGBM, into the shape `Booster.dump_model()` gives.

Why: importing LightGBM imports scikit-learn and SciPy with it, about half of the server's cold start,
while the served trees run in numba (serving.model.forest) and need only the trees' numbers. The text
format writes every threshold and leaf value with 17 significant digits, so the numbers read here are
LightGBM's own doubles (tests compare the flattened forest with the one built from `dump_model()`).

Per tree the file has parallel arrays over internal nodes (split_feature, threshold, decision_type,
left_child, right_child, internal_count; a child < 0 is leaf ~child) and over leaves (leaf_value,
leaf_count). decision_type packs bit 0 categorical, bit 1 default left, bits 2-3 the missing type
(0 None, 1 Zero, 2 NaN); a categorical node's threshold indexes cat_boundaries, which delimit its
32-bit words of category bits in cat_threshold.

    >>> dump = parse_model(Path("model.txt").read_text())      # doctest: +SKIP
    >>> Forest.from_dump(dump)                                  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

_MISSING_TYPES = ("None", "Zero", "NaN")


def parse_model(text: str) -> dict[str, Any]:
    """The keys of `dump_model()` the forest reads: max_feature_idx, num_tree_per_iteration, tree_info.
    A file that is not a LightGBM model raises ValueError naming what is wrong."""
    header, _, rest = text.partition("\nTree=")
    if not header.startswith("tree\n") or not rest:
        raise ValueError("not a LightGBM text model (no 'tree' header or no trees)")
    head = _fields(header)
    body = ("Tree=" + rest).split("end of trees", 1)[0]
    trees = []
    for i, block in enumerate(body.split("\nTree=")):
        try:
            trees.append(_tree(_fields(block)))
        except (KeyError, ValueError, IndexError) as exc:
            raise ValueError(f"the LightGBM text model is damaged at tree {i}: {type(exc).__name__} {exc}") from None
    if not trees:
        raise ValueError("the LightGBM text model holds no trees")
    if "average_output" in head:
        raise ValueError("random-forest models (average_output) are not supported")
    return {
        "max_feature_idx": int(head["max_feature_idx"]),
        "num_tree_per_iteration": int(head.get("num_tree_per_iteration", "1")),
        "tree_info": trees,
    }


def _fields(block: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
        elif line.strip():
            out[line.strip()] = ""
    return out


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split()]


def _floats(value: str) -> list[float]:
    return [float(v) for v in value.split()]


def _tree(f: dict[str, str]) -> dict[str, Any]:
    n_leaves = int(f["num_leaves"])
    leaf_value = _floats(f["leaf_value"])
    if f.get("is_linear", "0") != "0":
        return {"tree_structure": {"leaf_coeff": True}}  # refused by the forest, as dump_model's is
    if n_leaves == 1:
        return {"tree_structure": {"leaf_value": leaf_value[0]}}
    leaf_count = _ints(f["leaf_count"])
    feature = _ints(f["split_feature"])
    threshold = f["threshold"].split()
    decision = _ints(f["decision_type"])
    left, right = _ints(f["left_child"]), _ints(f["right_child"])
    internal_count = _ints(f["internal_count"])
    bounds = _ints(f.get("cat_boundaries", ""))
    words = _ints(f.get("cat_threshold", ""))
    n_internal = n_leaves - 1
    if not (
        len(leaf_value) == len(leaf_count) == n_leaves
        and len(feature)
        == len(threshold)
        == len(decision)
        == len(left)
        == len(right)
        == len(internal_count)
        == n_internal
    ):
        raise ValueError(f"a tree's arrays do not match its {n_leaves} leaves")

    def node(index: int, depth: int) -> dict[str, Any]:
        if depth > n_leaves:
            raise ValueError("a tree's children form a cycle")
        if index < 0:
            leaf = ~index
            return {"leaf_value": leaf_value[leaf], "leaf_count": leaf_count[leaf]}
        kind = decision[index]
        out: dict[str, Any] = {
            "split_feature": feature[index],
            "default_left": bool(kind & 2),
            "missing_type": _MISSING_TYPES[(kind >> 2) & 3],
            "internal_count": internal_count[index],
        }
        if kind & 1:  # categorical: the categories whose bit is set, written as dump_model writes them
            cat = int(threshold[index])
            bits = words[bounds[cat] : bounds[cat + 1]]
            cats = [32 * w + b for w, word in enumerate(bits) for b in range(32) if (word >> b) & 1]
            out["decision_type"], out["threshold"] = "==", "||".join(map(str, cats))
        else:
            out["decision_type"], out["threshold"] = "<=", float(threshold[index])
        out["left_child"] = node(left[index], depth + 1)
        out["right_child"] = node(right[index], depth + 1)
        return out

    return {"tree_structure": node(0, 0)}
