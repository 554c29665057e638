"""Batched speech augmentation and log-mel features against librosa / numpy per-sample references
(the official i-Mix Speech Commands transforms)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
from scipy import stats

from imix_sweeps import augment_audio as AA

SR = 16000


def _waves(b: int, seed: int = 0, t: int = SR) -> torch.Tensor:
    """Tones of random pitch and loudness plus noise, one silent clip, one half-silent clip."""
    g = torch.Generator().manual_seed(seed)
    time = torch.arange(t) / SR
    freq = 200 + 2000 * torch.rand(b, 1, generator=g)
    amp = 0.05 + 0.5 * torch.rand(b, 1, generator=g)
    x = amp * torch.sin(2 * np.pi * freq * time) + 0.02 * torch.randn(b, t, generator=g)
    x[0] = 0.0
    x[1, t // 2 :] = 0.0
    return x.float()


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_mel_db_matches_librosa(pad_mode: str) -> None:
    x = _waves(6)
    ours = AA.mel_db(x, pad_mode=pad_mode)
    assert ours.shape == (6, 1, 32, 32)
    for i in range(6):
        s = librosa.feature.melspectrogram(y=x[i].numpy(), sr=SR, n_mels=32, pad_mode=pad_mode)
        ref = librosa.power_to_db(s, ref=np.max)
        np.testing.assert_allclose(ours[i, 0].numpy(), ref, atol=1e-2, rtol=0)
    assert ours[0].abs().max() == 0  # silence: 0 dB everywhere, as librosa
    assert ours.max() <= 0 and ours.min() >= -80


def test_change_speed_matches_numpy_interp_and_fix_length() -> None:
    x = _waves(8, t=4000)
    out = AA.change_speed(x, 0.2, p=0.5, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    on = torch.rand(8, generator=g) < 0.5
    scale = -0.2 + 0.4 * torch.rand(8, generator=g, dtype=torch.float64)
    for i in range(8):
        s = x[i].numpy()
        if on[i]:
            speed = 1.0 / (1 + float(scale[i]))
            s = np.interp(np.arange(0, len(s), speed), np.arange(len(s)), s).astype(np.float32)
            s = s[:4000] if len(s) >= 4000 else np.pad(s, (0, 4000 - len(s)))
        np.testing.assert_allclose(out[i].numpy(), s, atol=1e-5, rtol=0)
    assert 0 < on.sum() < 8


def test_time_shift_matches_numpy_pad() -> None:
    x = _waves(8, t=5000)
    out = AA.time_shift(x, 0.2, p=0.5, generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    on = torch.rand(8, generator=g) < 0.5
    shifts = torch.randint(-3200, 3201, (8,), generator=g)
    for i in range(8):
        s = x[i].numpy()
        if on[i]:
            shift = int(shifts[i])
            a, b = -min(0, shift), max(0, shift)
            s = np.pad(s, (a, b), "constant")
            s = s[: len(s) - a] if a else s[b:]
        np.testing.assert_array_equal(out[i].numpy(), s)


def test_stretch_stft_matches_librosa_phase_vocoder() -> None:
    x = _waves(8)
    spec = AA.stft(x)
    out = AA.stretch_stft(spec, 0.2, p=0.5, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    on = torch.rand(8, generator=g) < 0.5
    rate = 1 + (-0.2 + 0.4 * torch.rand(8, generator=g, dtype=torch.float64))
    frames = spec.shape[-1]
    for i in range(8):
        if not on[i]:
            assert torch.equal(out[i], spec[i])
            continue
        d = spec[i].numpy().astype(np.complex128)  # librosa in double precision
        ref = librosa.phase_vocoder(d, rate=float(rate[i]), hop_length=512)
        ref = (
            ref[:, :frames]
            if ref.shape[1] >= frames
            else np.pad(ref, ((0, 0), (0, frames - ref.shape[1])))
        )
        tol = 1e-3 * max(np.abs(ref).max(), 1e-6)
        np.testing.assert_allclose(out[i].numpy(), ref, atol=tol, rtol=0)
    assert 0 < on.sum() < 8


def test_change_amplitude_distribution() -> None:
    x = torch.ones(4000, 2)
    out = AA.change_amplitude(x, (0.7, 1.1), p=0.5, generator=torch.Generator().manual_seed(0))
    f = out[:, 0]
    changed = f != 1.0
    assert abs(changed.float().mean().item() - 0.5) < 0.04
    ks = stats.kstest(f[changed].numpy(), stats.uniform(loc=0.7, scale=0.4).cdf)
    assert ks.pvalue > 1e-3
    assert torch.equal(out[:, 0], out[:, 1])  # one factor per clip


def test_background_noise_mixing_matches_formula() -> None:
    x = _waves(16, t=1000)
    bank = torch.randn(3, 2500, generator=torch.Generator().manual_seed(9))
    out = AA.add_background_noise(x, bank, 0.45, p=0.5, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    clip = torch.randint(0, 3, (16,), generator=g)
    off = torch.randint(0, 2500 - 1000 + 1, (16,), generator=g)
    on = torch.rand(16, generator=g) < 0.5
    pct = 0.45 * torch.rand(16, generator=g, dtype=torch.float64)
    for i in range(16):
        noise = bank[clip[i], off[i] : off[i] + 1000]
        a = float(pct[i]) if on[i] else 0.0
        torch.testing.assert_close(out[i], x[i] * (1 - a) + noise * a, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="noise_bank"):
        AA.add_background_noise(x, bank[:, :500], generator=torch.Generator())


def test_time_stretch_keeps_length_and_pitch() -> None:
    t = torch.arange(SR) / SR
    x = torch.sin(2 * np.pi * 1000 * t).repeat(4, 1).float()
    out = AA.time_stretch(x, 0.2, p=1.0, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    spec = torch.fft.rfft(out[:, 2000:12000]).abs()
    peak_hz = spec.argmax(1).float() * SR / 10000
    assert ((peak_hz - 1000).abs() <= 5).all()  # pitch unchanged by the phase vocoder
    same = AA.time_stretch(x, 0.2, p=0.0, generator=torch.Generator())
    torch.testing.assert_close(same[:, 2048:-2048], x[:, 2048:-2048], atol=1e-4, rtol=0)


def test_speech_view_shape_range_determinism() -> None:
    x = _waves(6)
    bank = torch.randn(2, 3 * SR, generator=torch.Generator().manual_seed(1)) * 0.1
    a = AA.speech_view(x, bank, generator=torch.Generator().manual_seed(5))
    b = AA.speech_view(x, bank, generator=torch.Generator().manual_seed(5))
    c = AA.speech_view(x, bank, generator=torch.Generator().manual_seed(6))
    assert a.shape == (6, 1, 32, 32)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.max() <= 0 and a.min() >= -80 and torch.isfinite(a).all()
    assert AA.speech_view(x, None, generator=torch.Generator()).shape == (6, 1, 32, 32)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        AA.mel_db(torch.zeros(2, 1, SR))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        AA.change_amplitude(torch.zeros(2, SR, dtype=torch.int16), generator=torch.Generator())
