"""Spoken words: the espeak-ng corpus builder, and the domain reading wavs in the Speech Commands
layout (tiny generated files; the builder test needs espeak-ng and skips without it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from imix_sweeps.data import spoken as SP
from imix_sweeps.data.base import DataMissingError
from imix_sweeps.data.speech import CLASSES, NOISE_DIR
from tests.test_domains_speech import write_speech

CPU = torch.device("cpu")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng absent")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "spoken_words"
    write_speech(r)
    return r


def test_reads_the_speech_commands_layout(root: Path):
    d = SP.spoken_words(str(root))
    assert d.name == "spoken_words" and d.modality == "audio" and d.num_classes == 12
    assert d.in_shape == [1, 32, 32]
    # 5 words x 4 clips; 1 each in validation / testing list -> 10 train + 1 silence, 5 test
    assert len(d.train_x) == 11 and len(d.test_x) == 5 and d.train_x.dtype == torch.int16
    assert d.train_y.tolist().count(CLASSES.index("silence")) == 1
    assert set(d.test_y.tolist()) == {CLASSES.index(w) for w in ("yes", "no", "go")} | {0}
    assert (root / "spoken_words_wave16k.npz").is_file()
    x1, x2 = next(d.pretrain_batches(0, 4, seed=0, device=CPU))
    assert x1.shape == (4, 1, 32, 32) and not torch.equal(x1, x2)


def test_view_bank_draws_two_distinct_cached_views(root: Path):
    d = SP.spoken_words(str(root), view_bank=3)
    assert isinstance(d, SP.ViewBankDomain) and d.pretrain_x.shape == (11, 3, 1, 32, 32)
    assert (root / "spoken_words_views3.npz").is_file()
    bank = d.pretrain_x
    assert not torch.equal(bank[:, 0], bank[:, 1])
    batches = list(d.pretrain_batches(0, 4, seed=0, device=CPU, with_index=True))
    assert len(batches) == 2
    for x1, x2, idx in batches:
        for a, b, i in zip(x1, x2, idx):
            k1 = [k for k in range(3) if torch.equal(a, bank[i, k])]
            k2 = [k for k in range(3) if torch.equal(b, bank[i, k])]
            assert k1 and k2 and k1 != k2
    again = SP.spoken_words(str(root), view_bank=3)  # from the cache, identical
    assert torch.equal(again.pretrain_x, bank)
    first = next(d.pretrain_batches(1, 4, seed=5, device=CPU))
    assert all(
        torch.equal(a, b)
        for a, b in zip(first, next(again.pretrain_batches(1, 4, seed=5, device=CPU)))
    )
    with pytest.raises(ValueError, match="view_bank"):
        SP.spoken_words(str(root), view_bank=1)


def test_missing_corpus_says_how_to_build(tmp_path: Path):
    with pytest.raises(DataMissingError, match=r"imix_sweeps\.data\.spoken build"):
        SP.spoken_words(str(tmp_path / "none"))


def test_noise_is_seeded_and_coloured():
    w, b = SP.noise("white", 2, 0), SP.noise("brown", 2, 0)
    assert np.array_equal(w, SP.noise("white", 2, 0)) and len(w) == 32000
    np.testing.assert_allclose(np.sqrt(np.mean(w**2)), 0.1, rtol=1e-3)
    # brown noise puts its power in the low frequencies
    low = lambda y: np.abs(np.fft.rfft(y))[:200].sum() / np.abs(np.fft.rfft(y)).sum()  # noqa: E731
    assert low(b) > 5 * low(w)


def test_fit_second_places_the_word_in_one_second():
    rng = np.random.RandomState(0)
    y = np.concatenate([np.zeros(500), np.ones(3000) * 0.5, np.zeros(500)]).astype(np.float32)
    out = SP.fit_second(y, rng)
    assert out.shape == (16000,) and np.count_nonzero(out) == 3000
    assert SP.fit_second(np.ones(20000, np.float32), rng).shape == (16000,)


@needs_espeak
def test_build_renders_a_deterministic_corpus(tmp_path: Path):
    kw = dict(words=("yes", "no", "bed"), accents=("en-us", "en-gb"), variants=("m1", "f2"))
    meta = SP.build(tmp_path / "a", test_fraction=0.25, noise_seconds=2, threads=2, **kw)
    assert meta["clips"] == 12 and meta["test_clips"] == 3 and len(meta["test_speakers"]) == 1
    a = tmp_path / "a"
    clip = a / "yes" / SP.clip_name("en-us", "m1")
    y, sr = sf.read(clip, dtype="int16")
    assert sr == 16000 and y.shape == (16000,) and np.abs(y).max() > 1000
    assert sorted(p.name for p in (a / NOISE_DIR).iterdir()) == [
        "brown_noise.wav",
        "pink_noise.wav",
        "white_noise.wav",
    ]
    test = (a / "testing_list.txt").read_text().split()
    speaker = meta["test_speakers"][0].replace("+", "_")
    assert sorted(test) == sorted(f"{w}/{speaker}_nohash_0.wav" for w in kw["words"])
    SP.build(tmp_path / "b", test_fraction=0.25, noise_seconds=2, threads=1, **kw)
    for f in sorted(a.rglob("*.wav")):
        assert f.read_bytes() == (tmp_path / "b" / f.relative_to(a)).read_bytes(), f
    d = SP.spoken_words(str(a))
    assert len(d.test_x) == 3 and len(d.train_x) == 9 + 0  # 9 * 0.1 -> 0 silence clips
