"""The vectors of a :class:`~.index.SearchIndex`: rows of one contiguous float32 matrix.

Rows of deleted records are zeroed and reused. A semantic search is one matrix-vector
product, then an exact rescoring (:func:`~.scoring.cosine`) of the few rows that can reach
the top, so scores do not depend on where a row sits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .scoring import cosine, kth_floor
from .text import Vector, normalize_vector

__all__ = ["Vectors", "grow"]

_IntArray = npt.NDArray[np.int64]
_FloatArray = npt.NDArray[np.float64]
# Vectors normalized and stored at once by add_many (bounds its extra memory).
_STEP = 4096


def grow(arr: npt.NDArray[Any], cap: int, fill: Any) -> npt.NDArray[Any]:
    """``arr`` grown to ``cap`` elements, the new ones ``fill``."""
    out = np.full(cap, fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class Vectors:
    """One unit float32 row per slot that has a vector.

    ``matrix`` holds the rows (free rows are zeros), ``row_slot`` each row's slot (-1:
    free), ``row`` each slot's row (-1: none; grown with the index's slots by
    :meth:`grow_slots`), ``n_rows`` the rows in use or freed, ``free_rows`` the freed ones.
    """

    __slots__ = ("free_rows", "matrix", "n_rows", "row", "row_slot")

    def __init__(self, slots: int) -> None:
        self.matrix: npt.NDArray[np.float32] | None = None
        self.row_slot = np.zeros(0, dtype=np.int64)
        self.free_rows: list[int] = []
        self.n_rows = 0
        self.row = np.full(slots, -1, dtype=np.int64)

    @property
    def dimensions(self) -> int | None:
        """Length of the vectors (None before the first one)."""
        return None if self.matrix is None else int(self.matrix.shape[1])

    def grow_slots(self, cap: int) -> None:
        self.row = grow(self.row, cap, -1)

    def check(self, vec: Vector | None) -> None:
        """Refuse a vector of another length than the ones held.

        Raises:
            ValueError: It has another length.
        """
        dims = self.dimensions
        if vec is not None and dims is not None and len(vec) != dims:
            raise _other_length(len(vec), dims)

    def check_many(self, vectors: Iterable[Vector | Sequence[float] | None]) -> None:
        """Refuse a batch holding a vector of another length than the others (or than the
        ones held), before anything changes, and make room for all of them at once.

        Raises:
            ValueError: A vector has another length.
        """
        dims = self.dimensions
        count = 0
        for vec in vectors:
            if vec is not None:
                count += 1
                if dims is None:
                    dims = len(vec)
                elif len(vec) != dims:
                    raise _other_length(len(vec), dims)
        if count:
            assert dims is not None
            self.reserve(count, dims)

    def get(self, slot: int) -> Vector | None:
        """A copy of ``slot``'s unit vector (None: it has none)."""
        if self.matrix is None:
            return None
        row = int(self.row[slot])
        return None if row < 0 else self.matrix[row].copy()

    def reserve(self, count: int, dims: int) -> None:
        """Room for ``count`` more vectors of ``dims`` numbers, in one piece: growing by
        doubling would leave up to half of a large matrix unused."""
        if self.matrix is None:
            self.matrix = np.zeros((max(16, count), dims), dtype=np.float32)
            self.row_slot = np.full(len(self.matrix), -1, dtype=np.int64)
            return
        need = self.n_rows + max(0, count - len(self.free_rows))
        if need > len(self.matrix):
            self._reserve_rows(need)

    def add_many(self, items: list[tuple[int, Any]]) -> None:
        """Normalize and store many slots' vectors, a chunk at a time (bounded extra memory)."""
        if items:
            self.reserve(len(items), len(items[0][1]))
        for start in range(0, len(items), _STEP):
            chunk = items[start : start + _STEP]
            rows = np.empty((len(chunk), len(chunk[0][1])), dtype=np.float32)
            ready = []
            for i, (_, v) in enumerate(chunk):
                if isinstance(v, np.ndarray) and v.dtype == np.float32:
                    rows[i] = v
                    ready.append(i)
                else:
                    rows[i] = normalize_vector(v)
            if ready:
                # Unit float32 vectors stay as they are (normalize_vector is idempotent on
                # them); the others are normalized one at a time, exactly as upsert would.
                picked = rows[ready]
                norms = np.sqrt(np.einsum("ij,ij->i", picked, picked, dtype=np.float64))
                for i in np.flatnonzero(np.abs(norms - 1.0) > 1e-6).tolist():
                    rows[ready[i]] = normalize_vector(chunk[ready[i]][1])
            self.add_rows([slot for slot, _ in chunk], rows)

    def add_rows(self, slots: list[int], vectors: npt.NDArray[np.float32]) -> None:
        """Store unit ``vectors`` as the rows of ``slots`` (free rows first)."""
        n, dims = vectors.shape
        if self.matrix is None:
            self.matrix = np.zeros((max(16, n), dims), dtype=np.float32)
            self.row_slot = np.full(max(16, n), -1, dtype=np.int64)
        rows: list[int] = []
        while self.free_rows and len(rows) < n:
            rows.append(self.free_rows.pop())
        extra = n - len(rows)
        if extra:
            start = self.n_rows
            end = start + extra
            if end > len(self.matrix):
                self._reserve_rows(max(end, 2 * len(self.matrix)))
            rows.extend(range(start, end))
            self.n_rows = end
        index = np.asarray(rows, dtype=np.int64)
        self.matrix[index] = vectors
        self.row_slot[index] = slots
        self.row[slots] = index

    def _reserve_rows(self, cap: int) -> None:
        assert self.matrix is not None
        matrix = np.zeros((cap, self.matrix.shape[1]), dtype=np.float32)
        matrix[: self.n_rows] = self.matrix[: self.n_rows]
        self.matrix = matrix
        self.row_slot = grow(self.row_slot, cap, -1)

    def release(self, slot: int) -> None:
        """Free ``slot``'s row, if it has one."""
        row = int(self.row[slot])
        if row >= 0:
            self.row[slot] = -1
            assert self.matrix is not None
            self.matrix[row] = 0.0
            self.row_slot[row] = -1
            self.free_rows.append(row)

    def searchable(self, q: Vector) -> bool:
        """Whether a search for ``q`` can find anything (vectors of its length are held)."""
        matrix = self.matrix
        return matrix is not None and len(q) == matrix.shape[1] and self.n_rows > 0

    def nearest(
        self, q: Vector, mask: npt.NDArray[np.bool_] | None, limit: int | None
    ) -> tuple[_IntArray, _FloatArray]:
        """The slots (and exact cosines) that can be among the ``limit`` most similar to
        ``q`` with a positive cosine (every positive one when ``limit`` is None), among the
        slots ``mask`` allows (all when None); call only when :meth:`searchable`."""
        matrix = self.matrix
        assert matrix is not None
        n = self.n_rows
        approx = matrix[:n] @ q
        used = self.row_slot[:n]
        eligible = used >= 0
        if mask is not None:
            eligible &= mask[np.maximum(used, 0)]
        # A float32 product is within about dims * 2**-24 of the exact cosine: keep every row
        # that could be in the top (or above zero) by that margin, then score those exactly.
        margin = q.shape[0] * 2.0**-22
        floor = -margin
        every = mask is None and not self.free_rows  # each of the n rows is eligible
        if limit is not None:
            scores = approx if every else approx[eligible]
            if len(scores) > limit:
                floor = max(floor, kth_floor(scores, limit) - 2 * margin)
        candidates = approx >= floor
        if not every:
            candidates &= eligible
        rows = np.flatnonzero(candidates)
        exact = cosine(matrix[rows], q)
        positive = exact > 0.0
        rows, exact = rows[positive], exact[positive]
        return used[rows], exact

    def memory_bytes(self) -> int:
        """The bytes of the matrix and the row arrays."""
        matrix = 0 if self.matrix is None else self.matrix.nbytes + self.row_slot.nbytes
        return matrix + self.row.nbytes


def _other_length(got: int, dims: int) -> ValueError:
    return ValueError(f"vector has {got} dimensions, this namespace's vectors have {dims}")
