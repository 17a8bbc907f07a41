"""Seeded mutations shared by the decoders' fuzz tests (no dependency: `random.Random`)."""

from __future__ import annotations


def mutate(rng, data: bytes, interesting: bytes) -> bytes:
    """1 to 3 of: bit flip, byte set, insertion (of `interesting` bytes), deletion, truncation."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not data:
            break
        i, op = rng.randrange(len(data)), rng.randrange(5)
        if op == 0:
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[i] = rng.randrange(256)
        elif op == 2:
            data[i:i] = bytes(rng.choice(interesting) for _ in range(rng.randint(1, 3)))
        elif op == 3:
            del data[i:i + rng.randint(1, 3)]
        else:
            del data[i:]
    return bytes(data)


def first_diff(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
