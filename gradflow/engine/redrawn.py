"""Weights drawn again instead of held, for a network whose weight stack is large.

A pass reads the weights twice: in order going forward, in reverse going back. Holding the
(L, n, n) stack costs its memory, and drawing it costs a page fault and a write to memory for
every page: at depth 10,000, width 256, 5.2 GB, and 9 of the 20 s the draw took on the
benchmark machine (the generator itself took 10). Drawing each chunk of layers twice costs the
generator's time a second time instead, and threads beside the pass hide most of it: while the
pass works on one chunk, the next ones in its direction are drawn into buffers of their own
(NumPy's generator releases the GIL while it fills an array). Going forward the stream can only
be drawn in order, one chunk after another; going back, every chunk's state is known, and
several are drawn at once.

The values are the held stack's, bit for bit: the first draw of a chunk takes the weight
stream in order and keeps the generator's state at the start of the next chunk; a later draw
restores the chunk's state. The first draw also measures each layer's ‖W‖_F.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from typing import Any, overload

import numpy as np

from gradflow.engine.initializers import draw_chunk, draw_weights, layer_norms
from gradflow.engine.spec import NetworkSpec
from gradflow.engine.threads import cores

CHUNK_BYTES = 16 << 20  # one buffer of layers; a reader holds one more than it draws ahead


def redraw_chunk(spec: NetworkSpec) -> int:
    """Layers per chunk: about CHUNK_BYTES of the pass's dtype, at least one."""
    layer = spec.width * spec.width * np.dtype(spec.dtype.value).itemsize
    return max(1, min(spec.depth, CHUNK_BYTES // layer))


def reader_ahead(threads: int | None = None) -> int:
    """Chunks a reader draws ahead of the pass, each on a thread: one a core, or a thread of
    the run's ``threads`` if fewer (going back, the pass mostly waits for them); none on one
    core or one thread, where the pass draws each chunk as it comes to it."""
    count = cores() if threads is None else min(threads, cores())
    return count if count > 1 else 0


def reader_bytes(spec: NetworkSpec) -> int:
    """Bytes a pass's reader holds, with the stream's saved states: its chunk buffers, for
    float32 each draw's float64 temporary (``draw_chunk`` layers, or the chunk if smaller),
    and a generator state a chunk."""
    n, chunk, ahead = spec.width, redraw_chunk(spec), reader_ahead()
    size = np.dtype(spec.dtype.value).itemsize
    temporaries = ahead * min(draw_chunk(spec), chunk) * n * n * 8 if size != 8 else 0
    states = (-(-spec.depth // chunk) + 1) * STATE_BYTES
    return (ahead + 1) * chunk * n * n * size + temporaries + states


STATE_BYTES = 600  # a PCG64 state as a dict, as tracemalloc counts it (~520)


class WeightStream:
    """A network's weight stream, drawn a chunk at a time: the generator's state at the start
    of every chunk reached so far, and ‖W_i‖_F of the layers drawn so far (NaN before)."""

    def __init__(self, spec: NetworkSpec, rng: np.random.Generator) -> None:
        self.spec, self.rng = spec, rng
        self.chunk = redraw_chunk(spec)
        self.chunks = -(-spec.depth // self.chunk)
        self.states: list[Mapping[str, Any]] = [rng.bit_generator.state]  # chunk c's: states[c]
        self.norms = np.full(spec.depth, np.nan)
        self._lock = threading.Lock()  # one draw at a time: they share the generator

    def layers(self, c: int) -> range:
        return range(c * self.chunk, min((c + 1) * self.chunk, self.spec.depth))

    def draw(self, c: int, out: np.ndarray) -> None:
        """Chunk c's layers into ``out`` (at least as many rows). A chunk drawn before is drawn
        again on a generator of its own, so several can be drawn at once; one never drawn is
        drawn in order, after every chunk before it."""
        if c + 1 < len(self.states):  # its state and its norms are known
            rng = np.random.Generator(type(self.rng.bit_generator)(0))
            rng.bit_generator.state = self.states[c]
            draw_weights(self.spec, rng, out[: len(self.layers(c))])
            return
        with self._lock:
            for k in range(min(c, len(self.states) - 1), c + 1):
                self.rng.bit_generator.state = self.states[k]
                rows = self.layers(k)
                layers = out[: len(rows)]
                draw_weights(self.spec, self.rng, layers)
                if k + 1 == len(self.states):  # a first draw: the next chunk's start, the norms
                    self.states.append(self.rng.bit_generator.state)
                    self.norms[rows.start : rows.stop] = layer_norms(layers)

    def complete(self) -> np.ndarray:
        """Every layer's norm, drawing any chunk never drawn (none, after a pass)."""
        if len(self.states) <= self.chunks:  # the last chunk's end is not reached yet
            n = self.spec.width
            self.draw(self.chunks - 1, np.empty((self.chunk, n, n), self.spec.dtype.value))
        return self.norms


class _Layers(Sequence[np.ndarray]):
    """(n, n) layers read one at a time, by index (negative ones count from the end), never by
    slice: what a pass asks of its weights."""

    def __len__(self) -> int:
        raise NotImplementedError

    def _layer(self, i: int) -> np.ndarray:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[np.ndarray]: ...
    def __getitem__(self, i: int | slice) -> np.ndarray | Sequence[np.ndarray]:
        if isinstance(i, slice):
            raise TypeError(f"{type(self).__name__}: layers are read one at a time")
        if not -len(self) <= i < len(self):
            raise IndexError(f"layer {i} of {len(self)}")
        return self._layer(i % len(self))

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self._layer(i)


class RedrawnWeights(_Layers):
    """The weights a pass of ``spec`` sees (β-scaled inside residual branches, branch ends
    zeroed if it asks), read layer by layer from a ``WeightStream`` through chunk buffers: the
    one read, and the next ``ahead`` chunks in the pass's direction, drawn meanwhile, each on a
    thread of its own (none ahead: the pass draws each chunk as it comes to it). Going forward
    the stream is drawn in order, one chunk after another; going back each chunk's state is
    known, so several are drawn at once. A layer read stays valid until a layer of another
    chunk is read."""

    def __init__(self, stream: WeightStream, spec: NetworkSpec, ahead: int = 1) -> None:
        self.stream, self.ahead = stream, max(0, ahead)
        n, chunk = spec.width, stream.chunk
        self.buffers = [
            np.empty((chunk, n, n), dtype=spec.dtype.value) for _ in range(self.ahead + 1)
        ]
        self.rows = [list(buffer) for buffer in self.buffers]  # views made once
        self.held = [-1] * len(self.buffers)  # the chunk each buffer holds or is being given
        self.drawing: list[threading.Thread | None] = [None] * len(self.buffers)
        self.ready = [False] * len(self.buffers)  # the chunk is in, not still being drawn
        self.current = 0  # the buffer being read
        self.direction = 1  # forward: up; a pass turns once, at the top
        self.scale, self.zeroed = spec.weight_scale, spec.zeroed_layers

    def __len__(self) -> int:
        return self.stream.spec.depth

    def _layer(self, i: int) -> np.ndarray:
        c = i // self.stream.chunk
        if self.held[self.current] != c or not self.ready[self.current]:
            self._move_to(c)
        return self.rows[self.current][i - c * self.stream.chunk]

    def _move_to(self, c: int) -> None:
        previous = self.held[self.current] if self.ready[self.current] else -1
        if previous >= 0:
            self.direction = 1 if c > previous else -1
        if c in self.held:
            buffer = self.held.index(c)
            self._wait(buffer)
        else:
            buffer = self._spare(keep=())
            self._fill(buffer, c)
        if not self.ready[buffer]:  # its thread failed: draw here, where an error is raised
            self._fill(buffer, c)
        self.current = buffer
        wanted = self._after(c)
        for target in wanted:
            if target in self.held:
                continue
            spare = self._spare(keep=(c, *wanted))
            if spare < 0:
                break
            self.held[spare], self.ready[spare] = target, False
            thread = threading.Thread(target=self._prefetch, args=(spare, target), daemon=True)
            self.drawing[spare] = thread
            thread.start()

    def _after(self, c: int) -> list[int]:
        """The chunks the pass reads next: on in its direction, or, at the top, back down."""
        step = self.direction if c + self.direction < self.stream.chunks else -1
        chunks = range(self.stream.chunks)
        return [k for k in range(c + step, c + step * (self.ahead + 1), step) if k in chunks]

    def _spare(self, keep: tuple[int, ...]) -> int:
        """A buffer whose chunk is none of ``keep``, its drawing done; -1 if there is none."""
        for buffer, chunk in enumerate(self.held):
            if chunk not in keep:
                self._wait(buffer)
                return buffer
        return -1

    def _wait(self, buffer: int) -> None:
        thread = self.drawing[buffer]
        if thread is not None:
            thread.join()
            self.drawing[buffer] = None

    def _prefetch(self, buffer: int, c: int) -> None:
        """``_fill`` on a thread. A failure (out of memory) leaves the buffer not ready, and the
        pass, when it comes to the chunk, draws it itself and meets the error there, as one."""
        with suppress(Exception):  # raised again, if it recurs, in the pass's thread
            self._fill(buffer, c)

    def _fill(self, buffer: int, c: int) -> None:
        self.held[buffer], self.ready[buffer] = c, False
        out = self.buffers[buffer]
        self.stream.draw(c, out)
        rows = self.stream.layers(c)
        if self.scale != 1.0:
            out[: len(rows)] *= self.scale
        for layer in rows:
            if layer in self.zeroed:  # a range: membership is arithmetic
                out[layer - rows.start] = 0
        self.ready[buffer] = True


class Transposed(_Layers):
    """Wᵢᵀ of a sequence of weights, as views made when read."""

    def __init__(self, weights: Sequence[np.ndarray]) -> None:
        self.weights = weights

    def __len__(self) -> int:
        return len(self.weights)

    def _layer(self, i: int) -> np.ndarray:
        return self.weights[i].T
