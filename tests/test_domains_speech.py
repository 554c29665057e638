"""Speech Commands v0.01 from tiny 16 kHz wav files in the tarball's layout."""

from __future__ import annotations

import random
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from imix_sweeps.data import speech as S
from imix_sweeps.data.base import DataMissingError
from imix_sweeps.data.cache import CorruptDataError

CPU = torch.device("cpu")
SR = 16000


def tone(freq: float, seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    rng = np.random.default_rng(seed)
    env = np.exp(-(((t - seconds / 2) / (seconds / 4)) ** 2))
    return (0.5 * env * np.sin(2 * np.pi * freq * t) + 0.01 * rng.normal(size=t.size)).astype(
        np.float32
    )


def write_speech(root: Path) -> dict[str, list[str]]:
    """yes/no/go (keywords), bed/cat (unknown), 4 clips each; one of each word in val, test."""
    words = {"yes": 300, "no": 500, "go": 700, "bed": 900, "cat": 1100}
    files: dict[str, list[str]] = {}
    for k, (w, f) in enumerate(words.items()):
        (root / w).mkdir(parents=True)
        files[w] = []
        for i in range(4):
            name = f"{k:04x}{i:04x}_nohash_0.wav"
            secs = 1.0 if i else 0.8  # one short clip: padded to 1 s
            sf.write(
                root / w / name, tone(f * (1 + 0.1 * i), secs, k * 10 + i), SR, subtype="PCM_16"
            )
            files[w].append(f"{w}/{name}")
    (root / "validation_list.txt").write_text("\n".join(v[0] for v in files.values()) + "\n")
    (root / "testing_list.txt").write_text("\n".join(v[1] for v in files.values()) + "\n")
    (root / S.NOISE_DIR).mkdir()
    rng = np.random.default_rng(0)
    sf.write(
        root / S.NOISE_DIR / "white_noise.wav",
        (0.1 * rng.normal(size=SR * 3)).astype(np.float32),
        SR,
    )
    (root / S.NOISE_DIR / "README.md").write_text("noise")
    return files


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "speech_commands"
    write_speech(r)
    return r


class Never(random.Random):
    """Every ``should apply`` draw fails: no augmentation is applied."""

    def random(self) -> float:
        return 0.999


def test_splits_classes_and_silence(root: Path):
    d = S.speech_commands(str(root), pipeline="reference", workers=0)
    assert d.modality == "audio" and d.num_classes == 12 and d.in_shape == [1, 32, 32]
    # train: 2 clips x 5 words + int(10 * 0.1) = 1 silence; test: 5 + 0 silence
    assert len(d.train) == 11 and len(d.test) == 5
    assert sorted(d.train.labels) == sorted([2, 2, 3, 3, 11, 11, 0, 0, 0, 0, 1])
    assert d.train.paths[-1] is None and d.train.labels[-1] == S.CLASSES.index("silence")
    tr, va, te = S.speech_splits(root, silence_fraction=0.5)
    assert len(va) == 5 and len(te) == 5 and len(tr) == 10 + 5  # evaluation: no silence
    assert None not in te.paths and S.CLASSES.index("silence") not in te.labels
    _, _, te2 = S.speech_splits(root, silence_fraction=0.5, test_silence_fraction=0.4)
    assert len(te2) == 5 + 2
    assert not set(tr.paths) & set(te.paths) - {None}
    assert all("nohash" in p for p in te.paths if p)


@pytest.mark.parametrize("pipeline", ["reference", "device"])
def test_test_split_has_no_silence_clips(root: Path, pipeline: str):
    """Official evaluation: SpeechCommandsDataset(valdir, ..., silence_percentage=0)
    (main_lincls.py L443); the training split keeps its 10%."""
    d = S.speech_commands(str(root), pipeline=pipeline, workers=0, silence_fraction=0.5)
    sil = S.CLASSES.index("silence")
    test_y = d.test.labels if pipeline == "reference" else d.test_y.tolist()
    train_y = d.train.labels if pipeline == "reference" else d.train_y.tolist()
    assert len(test_y) == 5 and sil not in test_y
    assert list(train_y).count(sil) == 5


def test_eval_features_match_librosa_and_are_deterministic(root: Path):
    d = S.speech_commands(str(root), pipeline="reference", workers=0)
    xs = torch.cat([x for x, _ in d.eval_batches("test", 2, device=CPU)])
    assert xs.shape == (5, 1, 32, 32) and xs.dtype == torch.float32
    path = d.test.paths[0]
    y, _ = librosa.load(path, sr=SR)
    y = np.pad(y, (0, max(0, SR - len(y))))[:SR]
    want = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_mels=32), ref=np.max)
    np.testing.assert_allclose(xs[0, 0].numpy(), want, rtol=1e-4, atol=1e-3)
    assert xs.max() <= 1e-5  # dB relative to the maximum
    again = torch.cat([x for x, _ in d.eval_batches("test", 3, device=CPU)])
    assert torch.equal(xs, again)
    # silence is all zeros -> a constant spectrogram, no NaN
    sil = S.eval_features(S.load_wav(None))
    assert torch.isfinite(sil).all()


def test_augmentation_chain(root: Path, monkeypatch):
    d = S.speech_commands(str(root), pipeline="reference", workers=0)
    aug = d.train_transform
    assert aug.noise.shape == (3, SR)  # 3 s of background noise -> three 1 s chunks
    y = d.train.load(0)
    a, b = aug(y, 1), aug(y, 1)
    assert a.shape == (1, 32, 32) and torch.isfinite(a).all() and torch.equal(a, b)
    assert any(not torch.equal(a, aug(y, s)) for s in range(2, 6))
    # with every random step off, the chain is exactly the evaluation features
    monkeypatch.setattr(S, "_make_rng", Never)
    torch.testing.assert_close(aug(y, 7), S.eval_features(y), rtol=1e-4, atol=1e-3)


def test_augment_steps_follow_the_official_parameters():
    y = S.fix_length(tone(440, 1.0, 0))

    class Always(random.Random):
        def random(self) -> float:
            return 0.0  # apply every step, uniform(a, b) -> a

    stft = S.augment_wave_stft(y, Always(0))
    frames = librosa.stft(y, n_fft=S.N_FFT, hop_length=S.HOP).shape[1]
    assert stft.shape == (S.N_FFT // 2 + 1, frames)  # fixed frame count after stretch/shift
    # reference: amplitude 0.7, speed scale -0.2 (np.interp), stretch rate 0.8, then the shift
    r = Always(0)
    [r.random() for _ in range(7)]
    shift = r.randint(-8, 8)
    z = y * 0.7
    z = np.interp(np.arange(0, len(z), 1 / 0.8), np.arange(len(z)), z).astype(np.float32)
    st = librosa.phase_vocoder(
        librosa.stft(S.fix_length(z), n_fft=2048, hop_length=512), rate=0.8, hop_length=512
    )
    a, b = -min(0, shift), max(0, shift)
    st = np.pad(st, ((0, 0), (a, b)))
    st = st[:, b:] if a == 0 else st[:, :-a]
    st = (
        st[:, :frames] if st.shape[1] >= frames else np.pad(st, ((0, 0), (0, frames - st.shape[1])))
    )
    np.testing.assert_allclose(np.abs(stft), np.abs(st), rtol=1e-4, atol=1e-4)


def test_pretrain_batches_resume_exactly(root: Path):
    d = S.speech_commands(str(root), pipeline="reference", workers=0)
    full = list(d.pretrain_batches(0, 4, seed=5, device=CPU))
    assert len(full) == d.steps_per_epoch(4) == 2
    x1, x2 = full[0]
    assert x1.shape == (4, 1, 32, 32) and not torch.equal(x1, x2)
    resumed = list(d.pretrain_batches(0, 4, seed=5, device=CPU, start_step=1))
    assert torch.equal(resumed[0][0], full[1][0]) and torch.equal(resumed[0][1], full[1][1])


def test_missing_corrupt_and_pipeline(tmp_path: Path, root: Path):
    with pytest.raises(DataMissingError, match=r"speech_commands_v0\.01\.tar\.gz"):
        S.speech_commands(str(tmp_path / "none"))
    (root / "testing_list.txt").rename(root / "t.txt")
    with pytest.raises(DataMissingError, match=r"testing_list.txt"):
        S.speech_commands(str(root), pipeline="reference")
    (root / "t.txt").rename(root / "testing_list.txt")
    bad = root / "yes" / "0000dead_nohash_0.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    d = S.speech_commands(str(root), pipeline="reference", workers=0)
    i = d.train.paths.index(str(bad))
    with pytest.raises(CorruptDataError, match=r"0000dead_nohash_0.wav.*audio"):
        d.train.load(i)
    with pytest.raises(ValueError, match=r"pipeline='gpu'.*device, reference"):
        S.speech_commands(str(root), pipeline="gpu")


def test_device_pipeline_waveforms_features_and_views(root: Path):
    ref = S.speech_commands(str(root), pipeline="reference", workers=0)
    d = S.speech_commands(str(root))
    assert isinstance(d, S.WaveDomain) and d.modality == "audio" and d.in_shape == [1, 32, 32]
    assert d.train_x.shape == (11, SR) and d.train_x.dtype == torch.int16
    assert d.train_y.tolist() == list(ref.train.labels) and d.test_y.tolist() == list(
        ref.test.labels
    )
    assert not d.train_x[-1].any()  # the silence clip
    # waveforms: the PCM samples, padded to 1 s; scaled like librosa.load
    y = S.fix_length(S.load_wav(ref.train.paths[0]))
    np.testing.assert_allclose(d._to_float(d.train_x[:1])[0].numpy(), y, atol=1e-6)
    # device evaluation features agree with the librosa pipeline
    a = torch.cat([x for x, _ in d.eval_batches("test", 4, device=CPU)])
    b = torch.cat([x for x, _ in ref.eval_batches("test", 4, device=CPU)])
    torch.testing.assert_close(a, b, atol=0.05, rtol=0)
    x1, x2 = next(d.pretrain_batches(0, 4, seed=1, device=CPU))
    assert x1.shape == x2.shape == (4, 1, 32, 32) and torch.isfinite(x1).all()
    assert not torch.equal(x1, x2) and x1.max() <= 1e-4 and x1.min() >= -80.01
    again = next(d.pretrain_batches(0, 4, seed=1, device=CPU))
    assert torch.equal(again[0], x1) and torch.equal(again[1], x2)


def test_device_pipeline_cache_rebuilt_when_corrupt(root: Path, monkeypatch):
    first = S.speech_commands(str(root))
    cache = root / "speech_commands_wave16k.npz"
    assert cache.exists()
    calls = []
    real = S.read_pcm16
    monkeypatch.setattr(S, "read_pcm16", lambda p: calls.append(p) or real(p))
    assert torch.equal(S.speech_commands(str(root)).train_x, first.train_x) and not calls
    cache.write_bytes(cache.read_bytes()[:200])
    assert torch.equal(S.speech_commands(str(root)).train_x, first.train_x) and calls


@pytest.mark.parametrize("pipeline", ["device", "reference"])
def test_without_augmentation_views_are_the_evaluation_features(root: Path, pipeline: str):
    """i-Mix --no-aug for speech (main_pretext.py L420-426): load, fix the length, 32-band mel."""
    d = S.speech_commands(str(root), pipeline=pipeline, workers=0).without_augmentation()
    x1, x2 = next(iter(d.pretrain_batches(0, 4, seed=0, device=CPU)))
    order = d.epoch_order(0, 0)[:4]
    plain = torch.cat([x for x, _ in d.eval_batches("train", 16, device=CPU)])
    assert torch.equal(x1, x2)
    torch.testing.assert_close(x1, plain[order])
