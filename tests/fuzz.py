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


def random_chunks(rng, data: bytes) -> list[bytes]:
    """`data` cut as reads may deliver it: byte by byte, or at 1 to 8 random places (sometimes
    with an empty read)."""
    if len(data) < 2:
        return [data]
    if rng.random() < 0.1:
        return [data[i:i + 1] for i in range(len(data))]
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8))))
    if rng.random() < 0.1:
        cuts.append(rng.choice(cuts))                  # an empty read in between
        cuts.sort()
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
