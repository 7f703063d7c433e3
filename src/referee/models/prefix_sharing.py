"""Which prompts share a head of tokens, and in what order to run them so each shared head runs once.

A judge sends many prompts that begin alike (the template's instructions; a pair's question in both
shown orders). Running such a head once into a KV cache, and every prompt's own tail after it, gives
the same next-token logits for fewer tokens of compute. This module only plans: it works on token
lists and calls back into the backend for forward passes, so the plan can be tested without a model.
"""

from __future__ import annotations

from typing import Callable, TypeVar

Logits = TypeVar("Logits")

MIN_SHARED_PREFIX = 16  # a shorter shared head is not worth a second forward pass
PADDING_SLACK = 0.1  # padded positions allowed per real one in a bundle of forward passes
# On a CPU every forward pass reads all the weights once, at batch 1 about the cost of 40 tokens of
# compute (135M parameters, fp32: 61-75 ms for one token, ~1.6 ms per further token; see
# benchmarks/bench_cpu_forward.py); a shared head that saves fewer tokens costs more as an extra pass.
MIN_TOKENS_SAVED_CPU = 48


def common_prefix_length(seqs: list[list[int]]) -> int:
    n = 0
    for column in zip(*seqs):
        if any(t != column[0] for t in column):
            break
        n += 1
    return n


def shared_prefix_groups(seqs: list[list[int]], min_shared: int) -> list[list[int]]:
    """Indices of ``seqs`` grouped so that running each group's common head once saves the most tokens.

    Sorting puts sequences with common heads next to each other; the sorted run is then cut into
    consecutive groups by dynamic programming. A group of k sharing h tokens saves (k - 1) * h tokens
    but pads its members' tails to the longest, so it is worth (k - 1) * h - padding: the two shown
    orders of a pair (same length) share their question, while prompts that only share a system
    prompt but differ in length stay apart. Groups sharing fewer than ``min_shared`` tokens are not made.
    """
    order = sorted(range(len(seqs)), key=lambda i: seqs[i])
    n = len(order)
    adjacent = [common_prefix_length([seqs[order[j]], seqs[order[j + 1]]]) for j in range(n - 1)]
    best = [0] * (n + 1)  # best[j]: most tokens saved over the first j sorted sequences
    cut = [0] * (n + 1)  # where the last group of that best split starts
    for j in range(1, n + 1):
        best[j], cut[j] = best[j - 1], j - 1
        shared, longest, total = None, len(seqs[order[j - 1]]), len(seqs[order[j - 1]])
        for i in range(j - 2, -1, -1):  # last group = sorted[i:j]
            shared = adjacent[i] if shared is None else min(shared, adjacent[i])
            if shared < min_shared:
                break
            longest, total = max(longest, len(seqs[order[i]])), total + len(seqs[order[i]])
            k = j - i
            worth = (k - 1) * shared - (k * longest - total)
            if worth > 0 and best[i] + worth > best[j]:
                best[j], cut[j] = best[i] + worth, i
    groups, j = [], n
    while j > 0:
        groups.append([order[k] for k in range(cut[j], j)])
        j = cut[j]
    return groups[::-1]


def head_splits(seqs: list[list[int]], min_shared: int) -> list[tuple[list[int], int]]:
    """Each group of ``shared_prefix_groups`` with the length of the head its members run once.

    Every member keeps at least one token of its own (its next-token logits come from its tail); a
    lone sequence runs whole (head 0).
    """
    splits = []
    for members in shared_prefix_groups(seqs, min_shared):
        head = 0
        if len(members) > 1:
            group = [seqs[i] for i in members]
            head = min(common_prefix_length(group), min(len(s) for s in group) - 1)
        splits.append((members, head))
    return splits


def low_padding_bundles(splits: list[tuple[list[int], int]], lengths: list[int], slack: float) -> list[list]:
    """Cut (members, head length) groups into bundles whose padded head and tail passes waste at most
    ``slack`` of the real tokens; groups of similar shape are bundled together (longest first)."""
    def shape(split):
        members, n = split
        return n, max(lengths[i] - n for i in members), len(members)

    bundles, current = [], []
    for split in sorted(splits, key=lambda s: (-(shape(s)[0] + shape(s)[1]), -shape(s)[0])):
        trial = current + [split]
        shapes = [shape(s) for s in trial]
        real = sum(lengths[i] for members, _ in trial for i in members) - sum(n * (k - 1) for n, _, k in shapes)
        padded = len(trial) * max(n for n, _, _ in shapes) + sum(k for _, _, k in shapes) * max(t for _, t, _ in shapes)
        if current and padded > (1 + slack) * real:
            bundles.append(current)
            trial = [split]
        current = trial
    if current:
        bundles.append(current)
    return bundles


def cut_back(cache, length: int) -> None:
    """Drop what a KV cache holds beyond its first ``length`` tokens (a negative crop: that form means
    the same in every transformers version)."""
    if cache is not None and cache.get_seq_length() > length:
        cache.crop(length - cache.get_seq_length())


def walk_prefix_tree(prompts: list[list[int]], last_logits: Callable[[list[int], object], Logits],
                     extend: Callable[[list[int], object], object], min_tokens_saved: int) -> list[Logits]:
    """Each prompt's next-token logits, one prompt per forward pass, each shared head run once.

    ``last_logits(tokens, cache)`` runs ``tokens`` on top of ``cache`` (None: from scratch) and returns
    the logits after the last one; ``extend(tokens, cache)`` runs ``tokens`` into ``cache`` (a new one
    when None) and returns it. The walk follows the prompts' prefix tree: at each branch point the
    prompts split by their next token, and a branch whose prompts share enough further tokens (saving
    at least ``min_tokens_saved``) extends the cache with them before splitting again. The cache is cut
    back after each use, so siblings see only their common head. Identical prompts run once.
    """
    runs: dict[tuple, list[int]] = {}
    for i, p in enumerate(prompts):
        runs.setdefault(tuple(p), []).append(i)
    seqs = [list(p) for p in runs]
    logits: list = [None] * len(seqs)

    def finish(i, cached, cache):
        logits[i] = last_logits(seqs[i][cached:], cache)
        cut_back(cache, cached)

    def walk(members, cached, cache):
        """Logits of ``members``, which all begin with the ``cached`` tokens held in ``cache``."""
        while len(members) > 1:
            shared = common_prefix_length([seqs[i] for i in members])
            shortest = min(members, key=lambda i: len(seqs[i]))
            if shared < len(seqs[shortest]):
                break
            finish(shortest, cached, cache)  # a prefix of all the others
            members = [i for i in members if i != shortest]
        if len(members) == 1:
            finish(members[0], cached, cache)
            return
        branches: dict[int, list[int]] = {}
        for i in members:
            branches.setdefault(seqs[i][shared], []).append(i)
        if (len(members) - 1) * (shared - cached) >= min_tokens_saved:
            head_cache = extend(seqs[members[0]][cached:shared], cache)
            for branch in branches.values():
                walk(branch, shared, head_cache)
            cut_back(cache, cached)
        else:
            for branch in branches.values():
                walk(branch, cached, cache)

    walk(list(range(len(seqs))), 0, None)
    out: list = [None] * len(prompts)
    for r, members in enumerate(runs.values()):
        for i in members:
            out[i] = logits[r]
    return out
