"""Spoken words: the Speech Commands vocabulary rendered by ``espeak-ng``, in the Speech Commands
folder layout, read by the Speech Commands pipeline.

Why synthetic speech: Speech Commands itself (2.3 GB) does not fit a quick CPU reproduction, and
the one packaged set of real recordings (Debian's ``asterisk-core-sounds-en-wav``) has a single
speaker saying each word once, so a split with unseen speakers in the test set is impossible. The
espeak-ng renderings vary what Speech Commands varies: speaker (8 English accents x 12 voice
variants = 96 "speakers"), speaking rate and pitch (seeded per clip), position of the word in the
1 s clip, and background noise (``_background_noise_``: white, pink and brown noise, as Speech
Commands ships next to its room recordings); the test split holds out whole speakers.

``python -m imix_sweeps.data.spoken build DIR`` writes, deterministically for one espeak-ng
version (recorded in ``DIR/corpus.json``)::

    DIR/<word>/<accent>_<variant>_nohash_0.wav   16 kHz, mono, 16-bit PCM, 1 s, one per speaker
    DIR/_background_noise_/{white,pink,brown}_noise.wav   20 s each
    DIR/testing_list.txt      <word>/<file> of the held-out speakers (25 %, seeded)
    DIR/validation_list.txt   empty (no model selection is done)

The ``spoken_words`` domain reads that folder exactly like ``speech_commands`` (12 classes:
``unknown, silence`` and the 10 command words; the other 20 words are ``unknown``; silence clips
are added, 10 % of each split) with the official augmentation and 1x32x32 log-mel inputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from imix_sweeps.data.base import require, step_generator
from imix_sweeps.data.cache import cached_arrays
from imix_sweeps.data.loader import LoaderDomain, check_pipeline, root_path
from imix_sweeps.data.speech import (
    CLASSES,
    NOISE_DIR,
    SAMPLE_RATE,
    SpeechAugment,
    WaveDomain,
    _device_domain,
    background_chunks,
    eval_features,
    speech_splits,
)

# The 30 words of Speech Commands v0.01.
WORDS = (
    "bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy",
    "house", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "wow", "yes", "zero",
)  # fmt: skip
ACCENTS = (
    "en-us",
    "en-us-nyc",
    "en-gb",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
)
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
NOISES = ("white", "pink", "brown")
ESPEAK = "espeak-ng"


def _seed(*keys: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, keys)).encode()).digest()[:4], "little")


def clip_name(accent: str, variant: str) -> str:
    return f"{accent}_{variant}_nohash_0.wav"


def held_out_speakers(
    speakers: Sequence[tuple[str, str]], fraction: float, seed: int
) -> set[tuple[str, str]]:
    """The held-out speakers: a seeded ``fraction`` of them (at least one)."""
    order = np.random.RandomState(seed).permutation(len(speakers))
    k = max(1, round(fraction * len(speakers)))
    return {speakers[i] for i in order[:k]}


def fit_second(y: np.ndarray, rng: np.random.RandomState, n: int = SAMPLE_RATE) -> np.ndarray:
    """Trim leading/trailing near-silence, then place the word at a random offset in ``n``
    samples (cropped to ``n`` when longer)."""
    loud = np.nonzero(np.abs(y) > 0.02 * (np.abs(y).max() + 1e-9))[0]
    if len(loud):
        y = y[loud[0] : loud[-1] + 1]
    y = y[:n]
    out = np.zeros(n, dtype=np.float32)
    start = rng.randint(0, n - len(y) + 1)
    out[start : start + len(y)] = y
    return out


def render(word: str, accent: str, variant: str, seed: int, tmp: Path) -> np.ndarray:
    """One clip: ``word`` by ``accent+variant`` at a seeded rate and pitch, 16 kHz float32, 1 s."""
    import soundfile as sf
    from scipy.signal import resample_poly

    rng = np.random.RandomState(_seed(seed, word, accent, variant))
    speed, pitch = int(rng.randint(130, 201)), int(rng.randint(20, 81))
    out = tmp / f"{word}_{accent}_{variant}.wav"
    cmd = [ESPEAK, "-v", f"{accent}+{variant}", "-s", str(speed), "-p", str(pitch), "-w", str(out)]
    subprocess.run([*cmd, word], check=True, capture_output=True)
    y, sr = sf.read(str(out), dtype="float32", always_2d=True)
    out.unlink()
    y = y.mean(1)
    if sr != SAMPLE_RATE:
        g = np.gcd(sr, SAMPLE_RATE)
        y = resample_poly(y, SAMPLE_RATE // g, sr // g).astype(np.float32)
    return fit_second(y, rng)


def noise(kind: str, seconds: int, seed: int) -> np.ndarray:
    """Seeded coloured noise (white: flat, pink: 1/f, brown: 1/f^2 power), RMS 0.1."""
    n = seconds * SAMPLE_RATE
    spec = np.fft.rfft(np.random.RandomState(_seed(seed, kind)).randn(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    power = {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind]
    y = np.fft.irfft(spec / f ** (power / 2), n)
    return (0.1 * y / (np.sqrt(np.mean(y**2)) + 1e-12)).astype(np.float32)


def _write(path: Path, y: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(y, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")


def espeak_version() -> str:
    if shutil.which(ESPEAK) is None:
        raise FileNotFoundError(f"{ESPEAK} not found: apt-get install espeak-ng")
    return subprocess.run([ESPEAK, "--version"], check=True, capture_output=True, text=True).stdout


def build(
    root: str | Path,
    *,
    words: Sequence[str] = WORDS,
    accents: Sequence[str] = ACCENTS,
    variants: Sequence[str] = VARIANTS,
    test_fraction: float = 0.25,
    seed: int = 0,
    noise_seconds: int = 20,
    threads: int = 4,
) -> dict[str, object]:
    """Render the corpus into ``root`` (see the module doc); returns what ``corpus.json`` holds."""
    root = Path(root)
    version = espeak_version().split("  Data at")[0].strip()
    speakers = [(a, v) for a in accents for v in variants]
    held_out = held_out_speakers(speakers, test_fraction, seed)
    jobs = [(w, a, v) for w in words for a, v in speakers]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max(1, threads)) as pool:
        clips = list(pool.map(lambda j: render(*j, seed, Path(tmp)), jobs))
    for (w, a, v), y in zip(jobs, clips):
        _write(root / w / clip_name(a, v), y)
    for kind in NOISES:
        _write(root / NOISE_DIR / f"{kind}_noise.wav", noise(kind, noise_seconds, seed))
    test = sorted(f"{w}/{clip_name(a, v)}" for w, a, v in jobs if (a, v) in held_out)
    (root / "testing_list.txt").write_text("".join(t + "\n" for t in test))
    (root / "validation_list.txt").write_text("")
    meta: dict[str, object] = {
        "espeak_ng": version,
        "words": list(words),
        "accents": list(accents),
        "variants": list(variants),
        "test_speakers": sorted(f"{a}+{v}" for a, v in held_out),
        "seed": seed,
        "clips": len(jobs),
        "test_clips": len(test),
        "sample_rate": SAMPLE_RATE,
    }
    (root / "corpus.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


@dataclass
class ViewBankDomain(WaveDomain):
    """A ``WaveDomain`` whose pre-training views come from a fixed bank: ``pretrain_x`` holds
    ``K`` augmented log-mel views per clip ``[N, K, 1, 32, 32]`` and each step takes two distinct
    ones per sample (seeded by ``(seed, epoch, step, rank)`` like any other augmentation)."""

    def two_views(self, x: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
        n, k = x.shape[0], x.shape[1]
        first = torch.randint(k, (n,), generator=g)
        second = (first + torch.randint(1, k, (n,), generator=g)) % k
        rows = torch.arange(n)
        return x[rows, first.to(x.device)], x[rows, second.to(x.device)]


def build_view_bank(
    domain: WaveDomain, k: int, path: Path, sources: Sequence[Path], chunk: int = 256
) -> Tensor:
    """``K`` augmented views of every training clip ``[N, K, 1, 32, 32]``, drawn with seeds
    ``(k, chunk start)`` only (the same bank for every run), cached at ``path``."""

    def build() -> dict[str, np.ndarray]:
        out = []
        for i in range(0, len(domain.train_x), chunk):
            x = domain._to_float(domain.train_x[i : i + chunk])
            views = [domain.augment(x, step_generator("view-bank", j, i)) for j in range(k)]
            out.append(torch.stack(views, 1).numpy())
        return {"views": np.concatenate(out)}

    key = f"spoken-views-v1:{k}:{len(domain.train_x)}"
    return torch.from_numpy(cached_arrays(path, build, list(sources), key=key)["views"])


def spoken_words(
    root: str,
    pipeline: str = "device",
    workers: int = 4,
    silence_fraction: float = 0.1,
    noise_p: float = 0.5,
    noise_max: float = 0.45,
    view_bank: int = 0,
) -> LoaderDomain | WaveDomain:
    """The espeak-ng corpus in ``root`` as a 12-class ``[1, 32, 32]`` log-mel domain.

    ``view_bank``: 0 augments every step afresh (the official way); ``K >= 2`` pre-computes ``K``
    augmented views of every training clip once (cached as ``spoken_words_views<K>.npz``) and
    draws two distinct ones per step: the same official augmentation, from a finite pool, at a
    fraction of the cost on a CPU (``device`` pipeline only)."""
    check_pipeline(pipeline, ("device", "reference"), "spoken_words")
    root_p = root_path(root, "spoken_words")
    require(
        root_p / "testing_list.txt",
        "the spoken-words corpus",
        f"{root_p}/ built by `python -m imix_sweeps.data.spoken build {root_p}` "
        "(needs espeak-ng: apt-get install espeak-ng)",
    )
    train, _, test = speech_splits(root_p, silence_fraction)
    bank = background_chunks(root_p / NOISE_DIR)
    if pipeline == "device":
        dom = _device_domain(
            root_p,
            train,
            test,
            bank,
            noise_p,
            noise_max,
            name="spoken_words",
            cache="spoken_words_wave16k.npz",
        )
        if view_bank == 0:
            return dom
        if view_bank < 2:
            raise ValueError(f"spoken_words: view_bank={view_bank} must be 0 or at least 2")
        # the waveform cache is a source: a corpus re-rendered in place rebuilds the bank too
        sources = [root_p / "testing_list.txt", root_p / "spoken_words_wave16k.npz"]
        views = build_view_bank(
            dom, view_bank, root_p / f"spoken_words_views{view_bank}.npz", sources
        )
        return ViewBankDomain(
            name=dom.name,
            modality=dom.modality,
            num_classes=dom.num_classes,
            train_x=dom.train_x,
            train_y=dom.train_y,
            test_x=dom.test_x,
            test_y=dom.test_y,
            augment=dom.augment,
            eval_transform=dom.eval_transform,
            pretrain_x=views,
        )
    if view_bank:
        raise ValueError("spoken_words: view_bank needs pipeline=device")
    return LoaderDomain(
        name="spoken_words",
        modality="audio",
        num_classes=len(CLASSES),
        train=train,
        test=test,
        train_transform=SpeechAugment(bank, noise_p, noise_max),
        eval_transform=eval_features,
        workers=workers,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m imix_sweeps.data.spoken", description="render the spoken-words corpus"
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="render the corpus into DIR (Speech Commands layout)")
    b.add_argument("dir")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--threads", type=int, default=4, help="espeak-ng processes at once")
    b.add_argument("--accents", nargs="+", default=list(ACCENTS))
    b.add_argument("--variants", nargs="+", default=list(VARIANTS))
    b.add_argument("--words", nargs="+", default=list(WORDS))
    a = ap.parse_args(argv)
    meta = build(
        a.dir,
        words=a.words,
        accents=a.accents,
        variants=a.variants,
        seed=a.seed,
        threads=a.threads,
    )
    print(f"wrote {meta['clips']} clips ({meta['test_clips']} test) to {a.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
