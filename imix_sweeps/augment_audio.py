"""Batched speech augmentation and log-mel features in torch, for Speech Commands at 16 kHz.

Waveforms are ``[B, T]`` float batches (1 s = 16,000 samples); every op returns the same shape
and takes its random draws from a CPU ``torch.Generator`` (parameters are drawn on the CPU and
applied on the batch's device, with no loop over the batch).

The official i-Mix speech pipeline (``speech_commands/transforms_wav.py`` and
``transforms_stft.py`` in the i-Mix code, taken from the Speech Commands reference code) is,
per sample, each step with probability 0.5 unless stated:

1. ``ChangeAmplitude``: multiply by U(0.7, 1.1);
2. ``ChangeSpeedAndPitchAudio``: ``scale ~ U(-0.2, 0.2)``, resample by linear interpolation at
   positions ``j / (1 + scale)`` (length ``T (1 + scale)``), then ``FixAudioLength`` (1 s:
   truncate or zero-pad, always);
3. ``ToSTFT``: ``librosa.stft(n_fft=2048, hop_length=512)`` (hann, centred) -> 32 frames;
4. ``StretchAudioOnSTFT``: phase vocoder with rate ``1 + U(-0.2, 0.2)``;
5. ``TimeshiftAudioOnSTFT``: shift by ``randint(-8, 8)`` frames, zero fill;
6. ``FixSTFTDimension``: truncate or zero-pad to the original 32 frames (always);
7. ``AddBackgroundNoiseOnSTFT``: with probability 0.5 mix ``stft * (1 - a) + noise_stft * a``,
   ``a ~ U(0, 0.45)``; the noise is a random 1-s segment of a background clip that went
   through steps 1-6 itself;
8. ``ToMelSpectrogramFromSTFT``: ``mel(sr=16000, n_fft=2048, n_mels=32) @ |stft|^2``, then
   ``power_to_db(ref=max)`` (amin 1e-10, top_db 80) -> ``[32, 32]``.

Note the background noise: *probability 0.5*, mixing weight *up to 0.45*.
:func:`speech_view` runs exactly these steps on a batch; the waveform-domain ops
(:func:`time_stretch`, :func:`time_shift`, :func:`add_background_noise`) are the same
augmentations for pipelines that stay in the time domain (``TimeshiftAudio``: up to 0.2 s;
``AddBackgroundNoise``: the same mixing on waveforms).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

SAMPLE_RATE = 16000
N_FFT = 2048
HOP = 512
N_MELS = 32


def _check_wave(x: Tensor) -> None:
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(
            f"audio ops take float waveforms [B, T]; got {x.dtype} of shape {tuple(x.shape)}"
        )


def _coin(b: int, p: float, generator: torch.Generator | None) -> Tensor:
    return torch.rand(b, generator=generator) < p


def _uniform(b: int, lo: float, hi: float, generator: torch.Generator | None) -> Tensor:
    return lo + (hi - lo) * torch.rand(b, generator=generator, dtype=torch.float64)


def _randint(b: int, lo: int, hi: int, generator: torch.Generator | None) -> Tensor:
    """Integers uniform in [lo, hi] inclusive (Python's ``random.randint``)."""
    return torch.randint(lo, hi + 1, (b,), generator=generator)


# ----------------------------------------------------------------------------- waveform ops
def change_amplitude(
    x: Tensor,
    amplitude_range: tuple[float, float] = (0.7, 1.1),
    p: float = 0.5,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``ChangeAmplitude``: with probability p multiply by U(amplitude_range)."""
    _check_wave(x)
    b = x.shape[0]
    on = _coin(b, p, generator)
    f = _uniform(b, *amplitude_range, generator)
    f = torch.where(on, f, torch.ones_like(f))
    return x * f.to(x.device, x.dtype, non_blocking=True).view(-1, 1)


def _interp_gather(x: Tensor, pos: Tensor, valid: Tensor) -> Tensor:
    """Linear interpolation of rows of x ``[B, T]`` at ``pos`` ``[B, T']`` (clamped to the
    last sample, as ``np.interp``), zero where not ``valid``."""
    t = x.shape[1]
    pos = pos.clamp(0, t - 1)
    i0 = pos.floor().long().clamp(max=t - 1)
    i1 = (i0 + 1).clamp(max=t - 1)
    frac = (pos - i0).to(x.device, x.dtype, non_blocking=True)
    i0, i1 = i0.to(x.device, non_blocking=True), i1.to(x.device, non_blocking=True)
    y = x.gather(1, i0) * (1 - frac) + x.gather(1, i1) * frac
    return y * valid.to(x.device, x.dtype, non_blocking=True)


def _on_subset(x: Tensor, on: Tensor, fn) -> Tensor:
    """``fn`` applied to the rows where the CPU mask ``on`` is set, the other rows unchanged. The
    row indices are known on the host, so selecting them costs no device synchronisation."""
    idx = on.nonzero().flatten()
    if len(idx) == 0:
        return x
    if len(idx) == x.shape[0]:
        return fn(x, idx)
    dev_idx = idx.to(x.device, non_blocking=True)
    return x.index_copy(0, dev_idx, fn(x.index_select(0, dev_idx), idx))


def change_speed(
    x: Tensor, max_scale: float = 0.2, p: float = 0.5, *, generator: torch.Generator | None = None
) -> Tensor:
    """``ChangeSpeedAndPitchAudio`` + ``FixAudioLength``: ``scale ~ U(-max, max)``; output sample
    ``j`` is ``x`` interpolated at ``j / (1 + scale)`` while ``j < ceil(T (1 + scale))``, zero
    after (the slowed-down clip is truncated, the sped-up one zero-padded to T)."""
    _check_wave(x)
    b, t = x.shape
    on = _coin(b, p, generator)
    scale = _uniform(b, -max_scale, max_scale, generator)

    def resample(rows: Tensor, idx: Tensor) -> Tensor:
        speed = 1.0 / (1.0 + scale[idx])  # float64 [b']
        j = torch.arange(t, dtype=torch.float64)
        pos = j[None] * speed[:, None]  # [b', T]
        valid = j[None] < torch.ceil(t / speed)[:, None]  # len(np.arange(0, t, speed))
        return _interp_gather(rows, pos, valid)

    return _on_subset(x, on, resample)


def time_shift(
    x: Tensor,
    max_shift_seconds: float = 0.2,
    p: float = 0.5,
    *,
    sr: int = SAMPLE_RATE,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``TimeshiftAudio``: shift ~ randint(-max, max) samples; ``out[j] = x[j + shift]``, zero
    outside the clip."""
    _check_wave(x)
    return _shift_last(x, int(sr * max_shift_seconds), p, generator)


def _shift_last(x: Tensor, max_shift: int, p: float, generator: torch.Generator | None) -> Tensor:
    b, t = x.shape[0], x.shape[-1]
    on = _coin(b, p, generator)
    shift = torch.where(on, _randint(b, -max_shift, max_shift, generator), 0)
    src = torch.arange(t)[None] + shift[:, None]  # [B, T]
    valid = (src >= 0) & (src < t)
    idx = src.clamp(0, t - 1).to(x.device, non_blocking=True)
    idx = idx.view(b, *([1] * (x.dim() - 2)), t).expand_as(x)
    mask = valid.to(x.device, non_blocking=True).view(b, *([1] * (x.dim() - 2)), t)
    return torch.where(mask, x.gather(-1, idx), torch.zeros((), dtype=x.dtype, device=x.device))


def noise_segments(
    noise_bank: Tensor, b: int, length: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """``[b, length]`` random segments: a random clip of ``noise_bank`` ``[N, L]`` (``L >= length``)
    at a random offset, as ``BackgroundNoiseDataset`` cuts 1-s pieces from the noise files."""
    if noise_bank.dim() != 2 or noise_bank.shape[1] < length:
        raise ValueError(
            f"noise_bank must be [N, L] with L >= {length} samples; got {tuple(noise_bank.shape)}"
        )
    n, span = noise_bank.shape
    clip = torch.randint(0, n, (b,), generator=generator)
    off = torch.randint(0, span - length + 1, (b,), generator=generator)
    idx = (off[:, None] + torch.arange(length)[None]).to(noise_bank.device, non_blocking=True)
    return noise_bank[clip.to(noise_bank.device, non_blocking=True)].gather(1, idx)


def _mix(x: Tensor, noise: Tensor, max_percentage: float, p: float, generator) -> Tensor:
    b = x.shape[0]
    on = _coin(b, p, generator)
    a = torch.where(on, _uniform(b, 0.0, max_percentage, generator), 0.0)
    a = a.to(x.device, torch.float32, non_blocking=True).view(b, *([1] * (x.dim() - 1)))
    if x.is_complex():
        return x * (1 - a) + noise * a
    return x * (1 - a).to(x.dtype) + noise * a.to(x.dtype)


def add_background_noise(
    x: Tensor,
    noise_bank: Tensor,
    max_percentage: float = 0.45,
    p: float = 0.5,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``AddBackgroundNoise``: with probability p, ``x * (1 - a) + noise * a``, ``a ~ U(0, max)``,
    the noise a random segment of ``noise_bank`` ``[N, L]``."""
    _check_wave(x)
    noise = noise_segments(
        noise_bank.to(x.device, x.dtype, non_blocking=True), *x.shape, generator=generator
    )
    return _mix(x, noise, max_percentage, p, generator)


def time_stretch(
    x: Tensor,
    max_scale: float = 0.2,
    p: float = 0.5,
    *,
    generator: torch.Generator | None = None,
    n_fft: int = N_FFT,
    hop_length: int = HOP,
) -> Tensor:
    """Time stretch without pitch change, in the waveform domain: STFT -> phase vocoder with rate
    ``1 + U(-max, max)`` (``librosa.phase_vocoder``), frames fixed to the original count ->
    inverse STFT of length T. :func:`speech_view` stretches the STFT directly, as the official
    pipeline does."""
    _check_wave(x)
    t = x.shape[1]
    spec = stft(x, n_fft=n_fft, hop_length=hop_length)
    spec = stretch_stft(spec, max_scale, p, generator=generator, hop_length=hop_length)
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    return torch.istft(spec, n_fft, hop_length, window=window, center=True, length=t)


# ----------------------------------------------------------------------------- STFT domain
def stft(x: Tensor, *, n_fft: int = N_FFT, hop_length: int = HOP, pad_mode: str = "constant"):
    """``librosa.stft(x, n_fft, hop_length)`` for a batch: periodic hann window, centred frames.
    ``pad_mode="constant"`` is librosa >= 0.10's default (0.7-0.9, used by the official code,
    padded with ``reflect``). Returns complex ``[B, n_fft // 2 + 1, frames]``."""
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    return torch.stft(
        x,
        n_fft,
        hop_length,
        window=window,
        center=True,
        pad_mode=pad_mode,
        return_complex=True,
    )


def stretch_stft(
    spec: Tensor,
    max_scale: float = 0.2,
    p: float = 0.5,
    *,
    generator: torch.Generator | None = None,
    hop_length: int = HOP,
) -> Tensor:
    """``StretchAudioOnSTFT`` + ``FixSTFTDimension``: ``librosa.phase_vocoder(D, rate, hop)`` with a
    per-sample ``rate = 1 + U(-max, max)``, output frames truncated / zero-padded to the input's.

    Vectorised over samples and frames: magnitudes interpolated between the frames around
    ``t * rate``, phase = first frame's phase + cumulative sum of the wrapped phase advances."""
    b = spec.shape[0]
    on = _coin(b, p, generator)
    rate = 1.0 + _uniform(b, -max_scale, max_scale, generator)
    return _on_subset(spec, on, lambda rows, idx: _phase_vocoder(rows, rate[idx], hop_length))


def _phase_vocoder(spec: Tensor, rate: Tensor, hop_length: int) -> Tensor:
    b, n_bins, frames = spec.shape
    dev = spec.device
    steps = torch.arange(frames, dtype=torch.float64)[None] * rate[:, None]  # [b, F] float64
    valid = (steps < frames).to(dev, non_blocking=True)[
        :, None
    ]  # frame t exists while t * rate < frames
    i0 = (
        steps.floor()
        .long()
        .clamp(max=frames)
        .to(dev, non_blocking=True)[:, None]
        .expand(b, n_bins, frames)
    )
    alpha = (steps - steps.floor()).to(dev, torch.float32, non_blocking=True)[:, None]  # [b, 1, F]
    padded = torch.nn.functional.pad(spec, (0, 2))  # two zero frames, as librosa
    mag_p, ang_p = padded.abs(), padded.angle()  # [b, bins, F + 2]
    m0, m1 = mag_p.gather(2, i0), mag_p.gather(2, i0 + 1)
    a0, a1 = ang_p.gather(2, i0), ang_p.gather(2, i0 + 1)
    mag = (1 - alpha) * m0 + alpha * m1
    # expected phase advance per frame, taken modulo 2 pi in float64 so that float32 sums of it
    # stay exact (the wrapped phase difference below is unchanged by whole turns)
    phi = torch.linspace(0, math.pi * hop_length, n_bins, dtype=torch.float64)
    phi = (
        torch.remainder(phi, 2.0 * math.pi).to(dev, torch.float32, non_blocking=True).view(1, -1, 1)
    )
    dphase = a1 - a0 - phi
    dphase = dphase - 2.0 * math.pi * torch.round(dphase / (2.0 * math.pi))
    adv = torch.cumsum(phi + dphase, dim=2)
    phase = torch.cat((ang_p[:, :, :1], ang_p[:, :, :1] + adv[:, :, :-1]), dim=2)
    return (torch.polar(mag, phase) * valid).to(spec.dtype)


def shift_stft(
    spec: Tensor, max_shift: int = 8, p: float = 0.5, *, generator: torch.Generator | None = None
) -> Tensor:
    """``TimeshiftAudioOnSTFT``: shift ~ randint(-max, max) frames, ``out[:, t] = D[:, t + shift]``,
    zero outside."""
    return _shift_last(spec, max_shift, p, generator)


@lru_cache(maxsize=16)
def _mel_basis(sr: int, n_fft: int, n_mels: int, device: str, dtype: torch.dtype) -> Tensor:
    """``librosa.filters.mel`` (slaney scale and norm, 0 to sr / 2) on ``device``, built once."""
    import librosa

    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    return torch.as_tensor(basis).to(device=device, dtype=dtype)


def mel_db_from_stft(
    spec: Tensor,
    *,
    sr: int = SAMPLE_RATE,
    n_mels: int = N_MELS,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
) -> Tensor:
    """``power_to_db(mel @ |spec|^2, ref=np.max)`` per sample -> ``[B, 1, n_mels, frames]``."""
    n_fft = 2 * (spec.shape[1] - 1)
    power = spec.real.square() + spec.imag.square()  # [B, bins, F]
    basis = _mel_basis(sr, n_fft, n_mels, str(spec.device), power.dtype)
    mel = torch.matmul(basis, power)  # [B, n_mels, F]
    db = 10.0 * torch.log10(mel.clamp(min=amin))
    ref = mel.amax(dim=(1, 2), keepdim=True).clamp(min=amin)
    db = db - 10.0 * torch.log10(ref)
    if top_db is not None:
        db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - top_db)
    return db.unsqueeze(1)


def mel_db(
    x: Tensor,
    sr: int = SAMPLE_RATE,
    n_mels: int = N_MELS,
    *,
    n_fft: int = N_FFT,
    hop_length: int = HOP,
    pad_mode: str = "constant",
    top_db: float | None = 80.0,
) -> Tensor:
    """Log-mel spectrogram ``[B, T] -> [B, 1, n_mels, 1 + T // hop]`` (``[B, 1, 32, 32]`` for 1 s at
    16 kHz), equal to ``librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=sr,
    n_mels=n_mels), ref=np.max)`` per sample: n_fft 2048, hop 512, periodic hann, centred
    frames (``pad_mode`` as :func:`stft`), power 2, slaney mel filters from 0 to sr / 2,
    amin 1e-10, top_db 80. In float32 it agrees with librosa to within 0.01 dB wherever the
    value is above the top_db floor (tests/test_perf_audio.py)."""
    _check_wave(x)
    spec = stft(x, n_fft=n_fft, hop_length=hop_length, pad_mode=pad_mode)
    return mel_db_from_stft(spec, sr=sr, n_mels=n_mels, top_db=top_db)


# ----------------------------------------------------------------------------- pipeline
def _wave_and_stft_augment(x: Tensor, generator: torch.Generator | None) -> Tensor:
    x = change_amplitude(x, generator=generator)
    x = change_speed(x, generator=generator)
    spec = stft(x)
    spec = stretch_stft(spec, generator=generator)
    return shift_stft(spec, generator=generator)


def speech_view(
    x: Tensor,
    noise_bank: Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    noise_p: float = 0.5,
    max_noise: float = 0.45,
) -> Tensor:
    """One augmented view of the official i-Mix Speech Commands pipeline (steps 1-8 of the module
    docstring), ``[B, 16000] -> [B, 1, 32, 32]`` log-mel dB. ``noise_bank`` ``[N, L]``
    (``L >= 16000``, the ``_background_noise_`` clips at 16 kHz); ``None`` skips step 7."""
    _check_wave(x)
    spec = _wave_and_stft_augment(x, generator)
    if noise_bank is not None:
        noise = noise_segments(
            noise_bank.to(x.device, x.dtype, non_blocking=True), *x.shape, generator=generator
        )
        noise_spec = _wave_and_stft_augment(noise, generator)
        spec = _mix(spec, noise_spec, max_noise, noise_p, generator)
    return mel_db_from_stft(spec)
