"""QEMU's guest random numbers with ``-seed N``: the bytes a virtio-rng device hands out.

virtio-rng's default backend, rng-builtin (backends/rng-builtin.c:
rng_builtin_receive_entropy_bh), fills each request with
``qemu_guest_getrandom_nofail`` (util/guest-random.c). Without ``-seed`` those are the
host's cryptographic random bytes, different on every run. With ``-seed N`` QEMU
switches to a deterministic stream: GLib's Mersenne Twister (``g_rand_new_with_seed_array``
on the 64-bit seed as two 32-bit words, low word first), four bytes per
``g_rand_int``, little-endian (``glib_random_bytes``; a tail shorter than four bytes
uses part of one more draw). Each vCPU thread takes 8 bytes of the main stream for its
own seed when it is created (``qemu_guest_random_seed_thread_part1``), so with one vCPU
the device's bytes start after two draws.

GLib's generator is the reference MT19937 (init_by_array, genrand_int32), the same
generator as Python's :mod:`random`; only the seeding differs, so the state is built
here and handed to ``random.Random``. Standard library only.
"""

from __future__ import annotations

import random

__all__ = ["GuestRandom", "DEFAULT_SEED"]

DEFAULT_SEED = 1  # the seed the queue replay passes to a real QEMU (-seed 1)
_N = 624


def _init_by_array(key: list[int]) -> list[int]:
    """MT19937's init_by_array (what g_rand_set_seed_array does), 624 words of state."""
    mt = [0] * _N
    mt[0] = 19650218
    for i in range(1, _N):
        mt[i] = (1812433253 * (mt[i - 1] ^ (mt[i - 1] >> 30)) + i) & 0xFFFFFFFF
    i, j = 1, 0
    for _ in range(max(_N, len(key))):
        mt[i] = ((mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525)) + key[j] + j) & 0xFFFFFFFF
        i, j = i + 1, j + 1
        if i >= _N:
            mt[0], i = mt[_N - 1], 1
        if j >= len(key):
            j = 0
    for _ in range(_N - 1):
        mt[i] = ((mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941)) - i) & 0xFFFFFFFF
        i += 1
        if i >= _N:
            mt[0], i = mt[_N - 1], 1
    mt[0] = 0x80000000
    return mt


class GuestRandom:
    """The main thread's stream of ``qemu_guest_getrandom`` under ``-seed seed``."""

    def __init__(self, seed: int = DEFAULT_SEED, vcpus: int = 1):
        self.seed = seed
        self._rand = random.Random()
        self._rand.setstate((3, tuple(_init_by_array([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF]))
                             + (_N,), None))
        for _ in range(vcpus):
            self.getrandom(8)  # qemu_guest_random_seed_thread_part1, once per vCPU

    def getrandom(self, n: int) -> bytes:
        """glib_random_bytes: whole 32-bit draws, little-endian; a short tail wastes the rest."""
        draws = (n + 3) // 4
        out = b"".join(self._rand.getrandbits(32).to_bytes(4, "little") for _ in range(draws))
        return out[:n]
