"""Generate the stored Philox4x32-10 streams in this folder.

Independent of the C code: a plain-Python Philox4x32-10 (Salmon et al., SC'11;
Random123's philox4x32_R with R = 10), fed with pydrop's counter layout
ctr = (block, stream, step & 0xffffffff, step >> 32), key = (seed & 0xffffffff,
seed >> 32). Each file holds the first 1000 32-bit outputs (250 blocks, words in
order) for stream 0, step 0, one hex word per line.

Run from the repository root:  python tests/data/gen_philox_stream.py
"""

from pathlib import Path

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF
SEEDS = (0, 20141103)
N_WORDS = 1000


def philox4x32_10(ctr: list[int], key: list[int]) -> list[int]:
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK, (p0 >> 32) ^ c3 ^ k1, p0 & MASK
    return [c0, c1, c2, c3]


def stream(seed: int, n_words: int) -> list[int]:
    key = [seed & MASK, seed >> 32]
    words: list[int] = []
    block = 0
    while len(words) < n_words:
        words += philox4x32_10([block, 0, 0, 0], key)
        block += 1
    return words[:n_words]


def main() -> None:
    here = Path(__file__).resolve().parent
    for seed in SEEDS:
        lines = [f"{w:08x}" for w in stream(seed, N_WORDS)]
        (here / f"philox_seed{seed}.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
