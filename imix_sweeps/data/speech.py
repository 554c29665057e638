"""Google Speech Commands v0.01 as the i-Mix paper used it: 12 classes, 1x32x32 log-mel inputs.

``root`` is the extracted ``speech_commands_v0.01.tar.gz``: ``<word>/*.wav`` (30 word folders,
16 kHz 1 s clips), ``_background_noise_/*.wav``, ``validation_list.txt``, ``testing_list.txt``.
Classes (in the official order): ``unknown, silence, yes, no, up, down, left, right, on, off,
stop, go``; every other word is ``unknown``; ``silence`` clips (all zeros) are added to the
training split, 10% of its size (``SpeechCommandsDataset``'s default, used for pre-training and
the linear classifier's training set), and none to the test split (``silence_percentage=0``,
imix main_lincls.py L443). Train = the clips in neither list; test = ``testing_list.txt``.

Pre-training pipeline (the official ``transforms_wav`` / ``transforms_stft`` chain; each step
applied with probability 0.5): amplitude x U(0.7, 1.1); speed and pitch change by resampling
with scale U(-0.2, 0.2); pad/crop to 1 s; STFT (n_fft 2048, hop 512); time stretch by a phase
vocoder with rate 1 + U(-0.2, 0.2); time shift by up to 8 STFT frames; pad/crop to the original
frame count; background noise: a random 1 s chunk of ``_background_noise_`` (itself passed
through the same augmentation) mixed in the STFT domain with weight U(0, 0.45); 32-band mel
power spectrogram, ``power_to_db(ref=max)``. Evaluation: pad/crop to 1 s, 32-band mel,
``power_to_db(ref=max)``, no randomness.

Two pipelines: ``device`` (default) decodes every clip once into an int16 waveform array
(cached as ``<root>/speech_commands_wave16k.npz``), holds it in memory and runs the same chain
batched in torch on the training device (``imix_sweeps.augment_audio.speech_view``; evaluation
``mel_db``). ``reference`` runs the chain per sample with librosa in DataLoader workers, every
random draw of a view from a ``random.Random`` seeded by (seed, epoch, index, view).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from imix_sweeps.data.base import InMemoryDomain, require
from imix_sweeps.data.cache import CorruptDataError, cached_arrays
from imix_sweeps.data.loader import LoaderDomain, check_pipeline, root_path

CLASSES = (
    "unknown",
    "silence",
    "yes",
    "no",
    "up",
    "down",
    "left",
    "right",
    "on",
    "off",
    "stop",
    "go",
)
SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 2048, 512, 32
NOISE_DIR = "_background_noise_"


def load_wav(path: str | Path | None, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A mono float32 waveform at ``sr`` (``None``: one second of silence)."""
    if path is None:
        return np.zeros(sr, dtype=np.float32)
    import librosa

    try:
        y, _ = librosa.load(str(path), sr=sr)
    except Exception as e:
        raise CorruptDataError(f"{path}: cannot be read as audio ({type(e).__name__}: {e})") from e
    return y.astype(np.float32)


def fix_length(y: np.ndarray, n: int = SAMPLE_RATE) -> np.ndarray:
    if len(y) > n:
        return y[:n]
    if len(y) < n:
        return np.pad(y, (0, n - len(y)))
    return y


def _make_rng(seed: int) -> random.Random:
    return random.Random(seed)


def _apply(rng: random.Random, p: float = 0.5) -> bool:
    return rng.random() < p


def augment_wave_stft(y: np.ndarray, rng: random.Random) -> np.ndarray:
    """Amplitude, speed/pitch, fixed length, STFT, stretch, shift, fixed frames -> complex STFT."""
    import librosa

    if _apply(rng):
        y = y * rng.uniform(0.7, 1.1)
    if _apply(rng):
        scale = rng.uniform(-0.2, 0.2)
        speed = 1.0 / (1 + scale)
        y = np.interp(np.arange(0, len(y), speed), np.arange(0, len(y)), y).astype(np.float32)
    y = fix_length(np.asarray(y, dtype=np.float32))
    stft = librosa.stft(y, n_fft=N_FFT, hop_length=HOP)
    frames = stft.shape[1]
    if _apply(rng):
        scale = rng.uniform(-0.2, 0.2)
        stft = librosa.phase_vocoder(stft, rate=1 + scale, hop_length=HOP)
    if _apply(rng):
        shift = rng.randint(-8, 8)
        a, b = -min(0, shift), max(0, shift)
        stft = np.pad(stft, ((0, 0), (a, b)))
        stft = stft[:, b:] if a == 0 else stft[:, :-a]
    if stft.shape[1] > frames:
        stft = stft[:, :frames]
    elif stft.shape[1] < frames:
        stft = np.pad(stft, ((0, 0), (0, frames - stft.shape[1])))
    return stft


def mel_db_from_stft(stft: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    import librosa

    basis = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS)
    return librosa.power_to_db(basis @ (np.abs(stft) ** 2.0), ref=np.max)


def eval_features(y: np.ndarray) -> Tensor:
    """The deterministic evaluation input: 1 s, 32-band mel, dB re max -> ``[1, 32, 32]``."""
    import librosa

    s = librosa.feature.melspectrogram(y=fix_length(y), sr=SAMPLE_RATE, n_mels=N_MELS)
    return torch.from_numpy(librosa.power_to_db(s, ref=np.max).astype(np.float32)).unsqueeze(0)


@dataclass
class SpeechAugment:
    """One official pre-training view, seeded; ``noise``: 1 s background chunks ``[K, 16000]``."""

    noise: np.ndarray
    noise_p: float = 0.5
    noise_max: float = 0.45

    def __call__(self, y: np.ndarray, seed: int) -> Tensor:
        rng = _make_rng(seed)
        stft = augment_wave_stft(y, rng)
        if len(self.noise) and _apply(rng, self.noise_p):
            chunk = self.noise[rng.randrange(len(self.noise))]
            noise_stft = augment_wave_stft(chunk, rng)
            w = rng.uniform(0, self.noise_max)
            stft = stft * (1 - w) + noise_stft * w
        return torch.from_numpy(mel_db_from_stft(stft).astype(np.float32)).unsqueeze(0)


@dataclass
class SpeechSource:
    """Clip paths (``None`` = a silence clip) and labels; ``load`` returns the waveform."""

    paths: Sequence[str | None]
    labels: Sequence[int]

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> np.ndarray:
        return load_wav(self.paths[i])


def background_chunks(noise_dir: Path) -> np.ndarray:
    """All background-noise files at 16 kHz, concatenated and cut into whole 1 s chunks."""
    files = sorted(noise_dir.glob("*.wav"))
    if not files:
        return np.zeros((0, SAMPLE_RATE), dtype=np.float32)
    y = np.concatenate([load_wav(f) for f in files])
    r = len(y) // SAMPLE_RATE
    return y[: r * SAMPLE_RATE].reshape(r, SAMPLE_RATE)


def _read_list(path: Path) -> set[str]:
    return {ln.strip() for ln in path.read_text().splitlines() if ln.strip()}


def speech_splits(
    root: Path, silence_fraction: float = 0.1, test_silence_fraction: float = 0.0
) -> tuple[SpeechSource, SpeechSource, SpeechSource]:
    """``(train, validation, test)`` sources of the official lists; silence clips added to the
    training split (``silence_fraction`` of its size) and to the evaluation splits
    (``test_silence_fraction``; the official evaluation adds none)."""
    how = (
        f"{root}/ as extracted from speech_commands_v0.01.tar.gz "
        "(http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz): <word>/*.wav, "
        "_background_noise_/, validation_list.txt, testing_list.txt"
    )
    require(root, "Speech Commands v0.01", how)
    val = _read_list(require(root / "validation_list.txt", "validation_list.txt", how))
    test = _read_list(require(root / "testing_list.txt", "testing_list.txt", how))
    index = {c: i for i, c in enumerate(CLASSES)}
    words = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("_"))
    if not words:
        raise CorruptDataError(f"{root}: no word folders (expected e.g. yes/, no/, ...)")
    splits: dict[str, tuple[list, list]] = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for w in words:
        for f in sorted((root / w).glob("*.wav")):
            rel = f"{w}/{f.name}"
            s = "test" if rel in test else "val" if rel in val else "train"
            splits[s][0].append(str(f))
            splits[s][1].append(index.get(w, 0))
    out = []
    for s in ("train", "val", "test"):
        paths, labels = splits[s]
        frac = silence_fraction if s == "train" else test_silence_fraction
        n_sil = int(len(paths) * frac)
        out.append(SpeechSource(paths + [None] * n_sil, labels + [index["silence"]] * n_sil))
    return out[0], out[1], out[2]


def read_pcm16(path: str) -> np.ndarray:
    """One clip as int16 samples at 16 kHz, padded/cropped to 1 s (resampled if needed)."""
    import soundfile as sf

    try:
        y, sr = sf.read(path, dtype="int16", always_2d=True)
    except Exception as e:
        raise CorruptDataError(f"{path}: cannot be read as audio ({type(e).__name__}: {e})") from e
    if sr == SAMPLE_RATE and y.shape[1] == 1:
        return fix_length(y[:, 0])
    f = load_wav(path)  # resample / downmix like the reference pipeline
    return fix_length(np.clip(np.round(f * 32768.0), -32768, 32767).astype(np.int16))


@dataclass
class WaveDomain(InMemoryDomain):
    """An ``InMemoryDomain`` of int16 waveforms ``[N, 16000]``, scaled to [-1, 1) on the device."""

    def _to_float(self, x: Tensor) -> Tensor:
        if x.dtype == torch.int16:
            return x.float().div_(32768.0)
        return super()._to_float(x)


def _device_domain(
    root: Path,
    train: SpeechSource,
    test: SpeechSource,
    noise: np.ndarray,
    noise_p: float,
    noise_max: float,
    name: str = "speech_commands",
    cache: str = "speech_commands_wave16k.npz",
) -> WaveDomain:
    from imix_sweeps import augment_audio as AA

    def files(src: SpeechSource) -> list[str]:
        return [p for p in src.paths if p is not None]

    tr_files, te_files = files(train), files(test)

    def build() -> dict[str, np.ndarray]:
        from imix_sweeps.progress import progress

        def read(fs: list[str], what: str) -> np.ndarray:
            desc = f"reading {what} wavs (once, then cached)"
            return np.stack([read_pcm16(p) for p in progress(fs, desc, total=len(fs), unit="wav")])

        return {"train": read(tr_files, "train"), "test": read(te_files, "test")}

    key = f"speech-v1:{len(tr_files)}:{len(te_files)}"
    sources = [root / "validation_list.txt", root / "testing_list.txt"]
    waves = cached_arrays(root / cache, build, sources, key=key)

    def with_silence(w: np.ndarray, src: SpeechSource) -> Tensor:
        sil = np.zeros((len(src) - len(w), SAMPLE_RATE), dtype=np.int16)  # silence clips last
        return torch.from_numpy(np.concatenate([w, sil]))

    bank = torch.from_numpy(np.ascontiguousarray(noise, dtype=np.float32))
    on_device: dict[str, Tensor] = {}

    def augment(x: Tensor, g: torch.Generator) -> Tensor:
        nb = None
        if len(bank):
            nb = on_device.setdefault(str(x.device), bank.to(x.device))
        return AA.speech_view(x, nb, generator=g, noise_p=noise_p, max_noise=noise_max)

    return WaveDomain(
        name=name,
        modality="audio",
        num_classes=len(CLASSES),
        train_x=with_silence(waves["train"], train),
        train_y=torch.as_tensor(list(train.labels), dtype=torch.long),
        test_x=with_silence(waves["test"], test),
        test_y=torch.as_tensor(list(test.labels), dtype=torch.long),
        augment=augment,
        eval_transform=lambda x: AA.mel_db(x),
    )


def speech_commands(
    root: str,
    pipeline: str = "device",
    workers: int = 4,
    silence_fraction: float = 0.1,
    test_silence_fraction: float = 0.0,
    noise_p: float = 0.5,
    noise_max: float = 0.45,
) -> LoaderDomain | WaveDomain:
    """Speech Commands v0.01, 12 classes, ``[1, 32, 32]`` log-mel inputs (see module doc)."""
    check_pipeline(pipeline, ("device", "reference"), "speech_commands")
    root_p = root_path(root, "speech_commands")
    train, _, test = speech_splits(root_p, silence_fraction, test_silence_fraction)
    noise = background_chunks(root_p / NOISE_DIR)
    if pipeline == "device":
        return _device_domain(root_p, train, test, noise, noise_p, noise_max)
    return LoaderDomain(
        name="speech_commands",
        modality="audio",
        num_classes=len(CLASSES),
        train=train,
        test=test,
        train_transform=SpeechAugment(noise, noise_p, noise_max),
        eval_transform=eval_features,
        workers=workers,
    )
