"""Finite groups from their multiplication tables, and word tasks ``w(a, b)`` on them.

A :class:`FiniteGroup` is its Cayley table ``table[i, j] = index of g_i · g_j`` with element 0 the
identity; the constructors build cyclic ``Z_n``, products ``Z_a × Z_b`` (any two groups), dihedral
``D_n`` (order ``2n``), symmetric ``S_n`` (``n ≤ 5``), alternating ``A_n`` and the quaternion group
``Q_8``; :func:`group_from_name` parses ``"Z7"``, ``"Z2xZ4"``, ``"D5"``, ``"S4"``, ``"A4"``, ``"Q8"``.

A :class:`GroupTask` is the task of Chughtai et al. (2023) and Morwani et al. (2024) — learn
``c = a · b`` from pairs — generalised to any *word* in two letters (Marchetti et al. 2025,
"Learning words in groups"): ``"ab"``, ``"aba^-1"`` (or ``"aba⁻¹"``, ``"abA"``; upper case is the
inverse), ``"a^2b"`` (or ``"a²b"``, ``"aab"``). Inputs are ``(a, b, =)`` with ``=`` the token
``|G|``, exactly like :class:`workbench.tasks.modular.ModularTask`, so the grokking models run on
either; on ``Z_p`` with the word ``ab`` the task equals ``ModularTask(op="add")``.

References
----------
.. [1] Chughtai, Chan, Nanda (2023). A toy model of universality: reverse engineering how networks
   learn group operations. ICML. arXiv:2302.03025.
.. [2] Morwani, Edelman, Oncescu, Zhao, Kakade (2024). Feature emergence via margin maximization:
   case studies in algebraic tasks. ICLR. arXiv:2311.07568.
.. [3] Marchetti et al. (2025). Learning words in groups: fusion algebras, tensor ranks and grokking.
   arXiv:2509.06931.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from workbench.validation import check_range

MAX_SYMMETRIC = 5  # S_5 has 120 elements; S_6 (720) makes |G|² = 518,400 pairs


@dataclass(frozen=True, eq=False)
class FiniteGroup:
    """A finite group given by its multiplication table.

    Parameters
    ----------
    name : e.g. ``"S4"``; :func:`group_from_name` rebuilds the group from it.
    table : ``(n, n)`` int array, ``table[i, j]`` = index of ``g_i g_j``; element 0 is the identity.
    elements : labels of the ``n`` elements.
    """

    name: str
    table: np.ndarray = field(repr=False)
    elements: tuple[str, ...] = field(repr=False)

    def __post_init__(self) -> None:
        t = np.asarray(self.table)
        n = len(self.elements)
        if t.shape != (n, n) or not np.issubdtype(t.dtype, np.integer):
            raise ValueError(f"table must be an ({n}, {n}) int array for {n} elements, got {t.shape} {t.dtype}")
        if not (np.array_equal(t[0], np.arange(n)) and np.array_equal(t[:, 0], np.arange(n))):
            raise ValueError("element 0 must be the identity (row 0 and column 0 of the table = 0..n-1)")
        if any(sorted(row) != list(range(n)) for row in t.tolist()):
            raise ValueError("every row of the table must be a permutation of 0..n-1 (a Latin square)")
        if not _associative(t):
            raise ValueError(f"the table of {self.name} is not associative")
        object.__setattr__(self, "table", t.astype(np.int64))

    @property
    def order(self) -> int:
        """Number of elements ``|G|``."""
        return len(self.elements)

    @property
    def inverse(self) -> np.ndarray:
        """``inverse[i]`` = index of ``g_i⁻¹``."""
        return np.argmax(self.table == 0, axis=1)

    def power(self, k: int) -> np.ndarray:
        """``power(k)[i]`` = index of ``g_i^k`` (negative ``k``: powers of the inverse)."""
        out, base = np.zeros(self.order, dtype=np.int64), (np.arange(self.order) if k >= 0 else self.inverse)
        for _ in range(abs(k)):
            out = self.table[out, base]
        return out

    def is_abelian(self) -> bool:
        return bool(np.array_equal(self.table, self.table.T))

    def index(self, label: str) -> int:
        """Index of the element labelled ``label``."""
        try:
            return self.elements.index(label)
        except ValueError:
            raise ValueError(f"{label!r} is not an element of {self.name}") from None


def _associative(t: np.ndarray) -> bool:
    """``(g_i g_j) g_k == g_i (g_j g_k)`` for all triples (``n³`` lookups; 1.7 M for S_5)."""
    return bool(np.array_equal(t[t, :], t[:, t]))


def cyclic(n: int) -> FiniteGroup:
    """``Z_n`` under addition mod ``n``; element ``k`` is labelled ``"k"``."""
    check_range(n, "n", 1)
    a = np.arange(n)
    return FiniteGroup(f"Z{n}", (a[:, None] + a[None, :]) % n, tuple(str(k) for k in a))


def product(g: FiniteGroup, h: FiniteGroup) -> FiniteGroup:
    """Direct product ``G × H``: element ``(g_i, h_j)`` has index ``i·|H| + j``."""
    i, j = np.divmod(np.arange(g.order * h.order), h.order)
    table = g.table[i[:, None], i[None, :]] * h.order + h.table[j[:, None], j[None, :]]
    labels = tuple(f"({g.elements[x]},{h.elements[y]})" for x, y in zip(i, j))
    return FiniteGroup(f"{g.name}x{h.name}", table, labels)


def dihedral(n: int) -> FiniteGroup:
    """``D_n``, symmetries of the regular n-gon, order ``2n``: ``r^k s^e`` has index ``k + n·e``.

    ``(r^a s^e)(r^b s^f) = r^(a + (−1)^e b) s^(e + f)`` (``s r s = r⁻¹``).
    """
    check_range(n, "n", 3)
    k, e = np.arange(2 * n) % n, np.arange(2 * n) // n
    rot = (k[:, None] + np.where(e[:, None] == 1, -1, 1) * k[None, :]) % n
    table = rot + n * ((e[:, None] + e[None, :]) % 2)
    labels = tuple(("e" if x == 0 else f"r{x}") if y == 0 else ("s" if x == 0 else f"r{x}s") for x, y in zip(k, e))
    return FiniteGroup(f"D{n}", table, labels)


def _permutation_group(name: str, perms: list[tuple[int, ...]]) -> FiniteGroup:
    """Permutations (one-line notation, ``σ(i) = perm[i]``) under composition ``(σ τ)(i) = σ(τ(i))``."""
    index = {p: i for i, p in enumerate(perms)}
    table = np.array([[index[tuple(s[t[i]] for i in range(len(s)))] for t in perms] for s in perms])
    return FiniteGroup(name, table, tuple("".join(str(x + 1) for x in p) for p in perms))


def _sign(p: tuple[int, ...]) -> int:
    return (-1) ** sum(p[i] > p[j] for i in range(len(p)) for j in range(i + 1, len(p)))


def symmetric(n: int) -> FiniteGroup:
    """``S_n`` (``n ≤ 5``); elements in lexicographic order, labelled in one-line notation ``"2134"``."""
    check_range(n, "n", 1, MAX_SYMMETRIC)
    return _permutation_group(f"S{n}", list(itertools.permutations(range(n))))


def alternating(n: int) -> FiniteGroup:
    """``A_n`` (``n ≤ 5``): the even permutations of :func:`symmetric`."""
    check_range(n, "n", 1, MAX_SYMMETRIC)
    return _permutation_group(f"A{n}", [p for p in itertools.permutations(range(n)) if _sign(p) == 1])


def quaternion() -> FiniteGroup:
    """``Q_8 = {±1, ±i, ±j, ±k}`` with ``i² = j² = k² = ijk = −1``."""
    units = np.eye(4, dtype=np.int64)  # 1, i, j, k as quaternion coefficient vectors
    elems = [s * u for u in units for s in (1, -1)]

    def mul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        a1, b1, c1, d1 = x
        a2, b2, c2, d2 = y
        return np.array([a1 * a2 - b1 * b2 - c1 * c2 - d1 * d2, a1 * b2 + b1 * a2 + c1 * d2 - d1 * c2,
                         a1 * c2 - b1 * d2 + c1 * a2 + d1 * b2, a1 * d2 + b1 * c2 - c1 * b2 + d1 * a2])

    key = {tuple(e): i for i, e in enumerate(elems)}
    table = np.array([[key[tuple(mul(x, y))] for y in elems] for x in elems])
    labels = tuple(f"{'-' if s < 0 else ''}{name}" for name in ("1", "i", "j", "k") for s in (1, -1))
    return FiniteGroup("Q8", table, labels)


_NAMED = re.compile(r"^(Z|D|S|A)(\d+)$")


def group_from_name(name: str) -> FiniteGroup:
    """``"Z7"``, ``"D5"``, ``"S4"``, ``"A5"``, ``"Q8"`` or products ``"Z2xZ4"``, ``"S3xZ2"``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"group name must be a non-empty string like 'S4', got {name!r}")
    parts = name.replace("×", "x").split("x")
    if len(parts) > 1:
        out = group_from_name(parts[0])
        for part in parts[1:]:
            out = product(out, group_from_name(part))
        return out
    if name == "Q8":
        return quaternion()
    m = _NAMED.match(name)
    if m is None:
        raise ValueError(f"unknown group {name!r}: use Z<n>, D<n>, S<n>, A<n> (n <= 5 for S, A), Q8, or products 'GxH'")
    kind, n = m.group(1), int(m.group(2))
    return {"Z": cyclic, "D": dihedral, "S": symmetric, "A": alternating}[kind](n)


# ------------------------------------------------------------------------------- words in a, b
_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_TOKEN = re.compile(r"([abAB])(?:\^?(-?\d+))?")


def parse_word(word: str) -> tuple[tuple[str, int], ...]:
    """Letters and exponents of a word in ``a, b``: ``"aba⁻¹"`` → ``(("a", 1), ("b", 1), ("a", -1))``.

    Accepted: ``a``, ``b``; exponents ``^k``, ``^-k``, ``k`` after the letter or superscripts
    (``a²``, ``a⁻¹``); an upper-case letter is the inverse (``A = a⁻¹``). Adjacent equal letters are
    merged (``"aab"`` = ``"a^2b"``).
    """
    if not isinstance(word, str):
        raise TypeError(f"word must be a string like 'ab' or 'aba^-1', got {type(word).__name__}")
    text = word.translate(_SUPERSCRIPT).replace(" ", "").replace("*", "")
    out: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"cannot parse word {word!r} at {text[pos:]!r}: letters a, b (A, B inverse), "
                             f"exponents like a^2, a^-1, a², a⁻¹")
        letter, exp = m.group(1), int(m.group(2)) if m.group(2) else 1
        letter, exp = (letter.lower(), -exp) if letter.isupper() else (letter, exp)
        if out and out[-1][0] == letter:
            exp += out.pop()[1]
        if exp:
            out.append((letter, exp))
        pos = m.end()
    if not out:
        raise ValueError(f"word {word!r} reduces to the identity; it must use a or b")
    return tuple(out)


def evaluate_word(group: FiniteGroup, word: str) -> np.ndarray:
    """``W[a, b]`` = index of ``w(g_a, g_b)`` for every pair: an ``(|G|, |G|)`` int array."""
    n = group.order
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    out = np.zeros((n, n), dtype=np.int64)
    for letter, exp in parse_word(word):
        out = group.table[out, group.power(exp)[a if letter == "a" else b]]
    return out


@dataclass
class GroupTask:
    """All pairs ``(a, b)`` of a finite group with labels ``w(a, b)``, split into train and test.

    Same interface as :class:`workbench.tasks.modular.ModularTask` (``train_x`` rows are
    ``(a, b, |G|)``, ``vocab_size = |G| + 1``, ``n_classes = |G|``).

    Parameters
    ----------
    group : a name for :func:`group_from_name` (``"S4"``, ``"D5"``, ``"Z2xZ4"``, ...).
    word : the operation, a word in ``a, b`` (:func:`parse_word`); ``"ab"`` is the group product.
    frac : fraction of the ``|G|²`` pairs used for training, in (0, 1).
    seed : seed of the split permutation.
    """

    group: str = "S4"
    word: str = "ab"
    frac: float = 0.5
    seed: int = 0
    G: FiniteGroup = field(init=False, repr=False)
    train_x: torch.Tensor = field(init=False, repr=False)
    train_y: torch.Tensor = field(init=False, repr=False)
    test_x: torch.Tensor = field(init=False, repr=False)
    test_y: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_range(self.frac, "frac", 0.0, 1.0, low_open=True, high_open=True)
        self.G = group_from_name(self.group)
        x, y = self.all_pairs()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        n_train = round(self.frac * len(x))
        if not 0 < n_train < len(x):
            raise ValueError(f"frac={self.frac} leaves an empty train or test set for {self.group}")
        self.train_x, self.train_y = x[perm[:n_train]], y[perm[:n_train]]
        self.test_x, self.test_y = x[perm[n_train:]], y[perm[n_train:]]

    @property
    def p(self) -> int:
        """Number of group elements (the grokking models' name for the number of classes)."""
        return self.G.order

    @property
    def vocab_size(self) -> int:
        return self.G.order + 1

    @property
    def n_classes(self) -> int:
        return self.G.order

    def labels(self) -> np.ndarray:
        """``(|G|, |G|)`` table of ``w(a, b)`` (:func:`evaluate_word`)."""
        return evaluate_word(self.G, self.word)

    def all_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``(a, b, =)`` of shape ``(|G|², 3)`` in row-major order of ``(a, b)``, and labels."""
        n = self.G.order
        a, b = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        x = torch.stack([a.reshape(-1), b.reshape(-1), torch.full((n * n,), n)], dim=1)
        return x, torch.from_numpy(self.labels().reshape(-1))

    def config(self) -> dict:
        return {"name": "groups", "group": self.group, "word": self.word, "frac": self.frac, "seed": self.seed}


def build_group_task(config: dict) -> GroupTask:
    """Rebuild a :class:`GroupTask` from its ``config()`` dict."""
    kwargs = dict(config)
    if kwargs.pop("name", "groups") != "groups":
        raise ValueError(f"not a groups task config: {config!r}")
    return GroupTask(**kwargs)
