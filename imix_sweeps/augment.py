"""Batched augmentations with per-sample random parameters, on whatever device the batch is on.

Each function takes a float batch and a ``torch.Generator`` (CPU) for its random draws, so a
step's augmentation is a pure function of the step's seed. Images are ``[B, C, H, W]`` in
[0, 1] (before normalisation); tabular rows are ``[B, F]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def _rand(n: int, generator: torch.Generator | None, device) -> Tensor:
    return torch.rand(n, generator=generator).to(device, non_blocking=True)


# ----------------------------------------------------------------------------- resampling matrices
def _resample_matrix(start: Tensor, length: Tensor, in_size: int, out_size: int) -> Tensor:
    """``[B, out_size, in_size]`` weights that resize the window ``[start, start + length)`` of an
    axis of ``in_size`` pixels to ``out_size`` pixels.

    Bilinear with antialiasing, as ``torchvision`` ``resize(..., antialias=True)`` and PIL's
    ``BILINEAR`` compute it: output pixel ``o`` is centred at ``start + (o + 0.5) * length / out``
    and weighs input pixel ``k`` of the window by the triangle ``1 - |k + 0.5 - centre| / s``,
    ``s = max(length / out, 1)`` (``s = 1`` when upsampling: plain bilinear, edge pixels
    clamped), normalised to sum 1.
    """
    scale = (length / out_size).view(-1, 1, 1)  # [B, 1, 1]
    support = scale.clamp(min=1.0)
    o = torch.arange(out_size, device=start.device, dtype=start.dtype).view(1, -1, 1)
    k = torch.arange(in_size, device=start.device, dtype=start.dtype).view(1, 1, -1)
    centre = start.view(-1, 1, 1) + (o + 0.5) * scale  # [B, out, 1]
    w = (1.0 - (k + 0.5 - centre).abs() / support).clamp(min=0.0)  # [B, out, in]
    inside = (k >= start.view(-1, 1, 1)) & (k < (start + length).view(-1, 1, 1))
    w = w * inside
    return w / w.sum(-1, keepdim=True).clamp(min=1e-12)


def _apply_separable(x: Tensor, wy: Tensor, wx: Tensor) -> Tensor:
    """``out[b, c] = wy[b] @ x[b, c] @ wx[b].T``: x ``[B, C, H, W]``, wy ``[B, h, H]``, wx ``[B, w, W]``.

    Two ``bmm`` calls with the channels folded into the matrix width (B products instead of
    B * C small ones)."""
    b, c, height, width = x.shape
    oh = wy.shape[1]
    y = torch.bmm(wy.to(x.dtype), x.permute(0, 2, 1, 3).reshape(b, height, c * width))
    y = torch.bmm(y.view(b, oh * c, width), wx.to(x.dtype).transpose(1, 2))  # [B, h * C, w]
    return y.view(b, oh, c, -1).permute(0, 2, 1, 3).contiguous()  # [B, C, h, w]


def _crop_boxes(
    b: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None,
    tries: int = 10,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``torchvision`` ``RandomResizedCrop.get_params`` for a batch, on the CPU: up to ``tries``
    (area, log-ratio) draws per sample, the first whose integer box fits wins; none fits -> the
    central crop with the ratio clamped to ``ratio``. Returns float ``(top, left, h, w)`` [B]."""
    area = float(height * width)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    # the draws come from the torch generator; the arithmetic on these few numbers runs in
    # numpy (float32, as torch would), which costs microseconds instead of a dispatch per op
    u_area = torch.rand(b, tries, generator=generator).numpy()
    u_ratio = torch.rand(b, tries, generator=generator).numpy()
    target = area * (scale[0] + (scale[1] - scale[0]) * u_area)
    aspect = np.exp(log_lo + (log_hi - log_lo) * u_ratio)
    w = np.round(np.sqrt(target * aspect))
    h = np.round(np.sqrt(target / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # [B, tries]
    first = ok.argmax(1)  # index of the first fitting try
    any_ok = ok.any(1)
    rows = np.arange(b)
    w, h = w[rows, first], h[rows, first]
    # fallback: central crop
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fw, fh = round(height * max(ratio)), height
    else:
        fw, fh = width, height
    w = np.where(any_ok, w, np.float32(fw))
    h = np.where(any_ok, h, np.float32(fh))
    u_top = torch.rand(b, generator=generator).numpy()
    u_left = torch.rand(b, generator=generator).numpy()
    top = np.minimum(np.floor(u_top * (height - h + 1)), height - h)
    left = np.minimum(np.floor(u_left * (width - w + 1)), width - w)
    top = np.where(any_ok, top, np.floor((height - h) / 2))
    left = np.where(any_ok, left, np.floor((width - w) / 2))
    return tuple(torch.from_numpy(v.astype(np.float32)) for v in (top, left, h, w))


def random_resized_crop(
    x: Tensor,
    size: Sequence[int] | int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    *,
    generator: torch.Generator | None = None,
    hflip: Tensor | None = None,
) -> Tensor:
    """Per-sample ``RandomResizedCrop`` with ``torchvision``'s parameter semantics.

    Box: ``torchvision.transforms.RandomResizedCrop.get_params`` for every sample at once (area
    fraction ~ U(scale), log aspect ratio ~ U(log ratio), integer box, up to 10 tries, central
    fallback). Resize: bilinear with antialiasing (``resize(..., antialias=True)``, PIL
    ``BILINEAR``), as two batched matrix products ``Wy @ crop @ Wx.T``, so any input and output
    size works and nothing loops over the batch; when no box is larger than the output, one
    ``grid_sample`` pass computes the same (``_upsample_crops``).

    ``hflip`` (bool ``[B]``, CPU): samples to mirror horizontally as well, folded into the
    resampling (``Wx``'s rows or the sampling grid reversed); equal to a flip after the crop.
    """
    b, _, height, width = x.shape
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    boxes = _crop_boxes(b, height, width, scale, ratio, generator)
    if b and bool((boxes[2] <= out_h).all()) and bool((boxes[3] <= out_w).all()):
        return _upsample_crops(x, *boxes, out_h, out_w, hflip)
    top, left, h, w = (t.to(x.device, non_blocking=True) for t in boxes)
    wy = _resample_matrix(top, h, height, out_h)
    wx = _resample_matrix(left, w, width, out_w)
    if hflip is not None and bool(hflip.any()):
        sel = torch.nonzero(hflip)[:, 0].to(x.device, non_blocking=True)
        wx = wx.index_copy(0, sel, wx.index_select(0, sel).flip(1))
    if x.dtype == torch.uint8:  # scale to [0, 1] inside the first product
        x, wy = x.float(), wy / 255.0
    return _apply_separable(x, wy, wx)


def _crop_coords(start: Tensor, length: Tensor, in_size: int, out_size: int) -> np.ndarray:
    """``[B, out]`` sampling positions of an upscaling resize of the window ``[start, start +
    length)``, as ``grid_sample`` coordinates (``align_corners=False``): pixel centres
    ``start + (o + 0.5) * length / out - 0.5`` clamped to the window (its edge pixels repeat).
    Host-side numpy on the CPU boxes."""
    s0, n = start.numpy()[:, None], length.numpy()[:, None]
    o = np.arange(out_size, dtype=np.float32)
    src = np.clip(s0 + (o + 0.5) * (n / out_size) - 0.5, s0, s0 + n - 1)
    return (2.0 * src + 1.0) / in_size - 1.0


def _upsample_crops(
    x: Tensor,
    top: Tensor,
    left: Tensor,
    h: Tensor,
    w: Tensor,
    out_h: int,
    out_w: int,
    hflip: Tensor | None,
) -> Tensor:
    """Crop-and-resize when no box is larger than the output (CIFAR-style crops of the whole
    image size): the antialiased bilinear filter then has support 1, i.e. plain bilinear
    interpolation with the window's edge pixels repeated, which ``grid_sample`` computes in one
    pass (equal to the matrix form up to float rounding). Boxes are CPU tensors."""
    height, width = x.shape[-2:]
    gy = _crop_coords(top, h, height, out_h)  # [B, out_h]
    gx = _crop_coords(left, w, width, out_w)  # [B, out_w]
    if hflip is not None:
        gx = np.where(hflip.numpy()[:, None], gx[:, ::-1], gx)
    b = len(gx)
    grid = np.empty((b, out_h, out_w, 2), dtype=np.float32)  # [..., (x, y)]
    grid[..., 0] = gx[:, None, :]
    grid[..., 1] = gy[:, :, None]
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    grid_t = torch.from_numpy(grid).to(x.device, x.dtype, non_blocking=True)
    return F.grid_sample(x, grid_t, mode="bilinear", padding_mode="border", align_corners=False)


def random_hflip(x: Tensor, p: float = 0.5, *, generator: torch.Generator | None = None) -> Tensor:
    flip = _rand(x.shape[0], generator, x.device) < p
    return torch.lerp(x, x.flip(-1), flip.to(x.dtype).view(-1, 1, 1, 1))  # 0/1 weight: a select


def random_crop_padded(
    x: Tensor, size: int, padding: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """torchvision ``RandomCrop(size, padding)``: zero-pad each side by ``padding``, then cut a
    ``size`` x ``size`` window at a uniform offset in ``0..H + 2 * padding - size`` (per sample)."""
    b, _, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, h + 2 * padding - size + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, w + 2 * padding - size + 1, (b,), generator=generator).to(x.device)
    r = torch.arange(size, device=x.device)
    rows, cols = (
        (oy[:, None] + r)[:, :, None],
        (ox[:, None] + r)[:, None, :],
    )  # [B, s, 1], [B, 1, s]
    out = xp[torch.arange(b, device=x.device)[:, None, None], :, rows, cols]  # [B, s, s, C]
    return out.permute(0, 3, 1, 2).contiguous()


def brightness_contrast(
    x: Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    p: float = 0.8,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample brightness and contrast factors ~ U(1 - s, 1 + s), applied with probability p."""
    b, dev = x.shape[0], x.device
    apply = (_rand(b, generator, dev) < p).view(-1, 1, 1, 1)
    fb = 1.0 + brightness * (2 * _rand(b, generator, dev) - 1)
    fc = 1.0 + contrast * (2 * _rand(b, generator, dev) - 1)
    y = (x * fb.view(-1, 1, 1, 1)).clamp(0, 1)
    mean = _luma(y).mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - mean) * fc.view(-1, 1, 1, 1) + mean).clamp(0, 1)
    return torch.lerp(x, y, apply.to(x.dtype))  # 0/1 weight: a select


def input_drop(
    x: Tensor,
    p: float = 0.2,
    columns: int | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Official i-Mix tabular augmentation: multiply by ``rand > p`` (no 1/(1-p) rescale).

    ``columns``: only the first ``columns`` features are dropped (CovType's continuous ones);
    ``None`` drops over all features (HIGGS)."""
    if p <= 0:
        return x
    n = x.shape[1] if columns is None else columns
    keep = (torch.rand(x.shape[0], n, generator=generator) > p).to(
        x.device, x.dtype, non_blocking=True
    )
    if columns is None:
        return x * keep
    out = x.clone()
    out[:, :n] = x[:, :n] * keep
    return out


# ----------------------------------------------------------------------------- colour (torchvision)
# ``torchvision``'s tensor kernels with one factor per sample instead of one per call.
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale (ITU-R 601-2 luma)


def _luma(x: Tensor) -> Tensor:
    """``[B, 3, H, W] -> [B, 1, H, W]`` (1-channel inputs pass through)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (
        (r * _GRAY_WEIGHTS[0])
        .add_(g, alpha=_GRAY_WEIGHTS[1])
        .add_(b, alpha=_GRAY_WEIGHTS[2])[:, None]
    )


def _bview(v: Tensor, x: Tensor) -> Tensor:
    return v.to(device=x.device, dtype=x.dtype, non_blocking=True).view(-1, 1, 1, 1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``clamp(f * x + (1 - f) * other, 0, 1)`` with ``factor`` [B] broadcast per sample."""
    f = _bview(factor, x)
    return (f * x + (1.0 - f) * other).clamp(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, torch.zeros_like(x[:, :1]), factor)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, _luma(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    return _blend(x, _luma(x), factor)


def _rotate_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Hue rotation of ``x`` ``[n, 3, H, W]`` by ``shift`` ``[n]`` (in turns): torchvision's HSV
    round trip with fewer passes over the pixels (same result up to float rounding).

    Hue ``h`` in sextants as ``_rgb2hsv`` (red wins ties, then green): ``(g - b) / c`` when red
    is the maximum, ``2 + (b - r) / c`` for green, ``4 + (r - g) / c`` for blue, ``c = max - min``;
    shifted and wrapped to [0, 6). Back (``_hsv2rgb``'s six-sector table in closed form): channel
    ``i`` with home hue ``2 i`` (red 0, green 2, blue 4) is ``max - c * clamp(d - 1, 0, 1)``, ``d``
    the circular distance of ``h`` from its home."""
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    c = maxc - minc
    # select with lerp by a 0/1 weight (exact for 0 and 1; far faster than where on the CPU)
    is_g = torch.eq(maxc, g, out=torch.empty_like(c))  # 0/1 in x's dtype, no bool step
    is_r = torch.eq(maxc, r, out=torch.empty_like(c))
    h = torch.lerp((r - g).add_(c, alpha=4.0), (b - r).add_(c, alpha=2.0), is_g)
    h = torch.lerp(h, g - b, is_r).div_(c.clamp(min=1e-12))  # c = 0 (grey): h = 0
    h = h.add_(6.0 * shift.to(x.device, x.dtype, non_blocking=True).view(-1, 1, 1))
    h = h.sub_(torch.floor(h * (1.0 / 6.0)), alpha=6.0)  # [0, 6)
    home = torch.arange(0.0, 6.0, 2.0, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    # clamp(min(d, 6 - d) - 1, 0, 1) = clamp(2 - |d - 3|, 0, 1) for d in [0, 6], in place
    t = (h.unsqueeze(1) - home).abs_().sub_(3.0).abs_().neg_().add_(2.0).clamp_(0.0, 1.0)
    return torch.addcmul(maxc.unsqueeze(1), c.unsqueeze(1), t, value=-1.0)


def adjust_hue(x: Tensor, factor: Tensor) -> Tensor:
    """Hue rotation by ``factor`` [B] in [-0.5, 0.5] turns, via HSV (torchvision's kernel)."""
    if x.shape[1] == 1 or x.shape[0] == 0:
        return x
    return _rotate_hue(x, factor)


def _factor_range(v: float, name: str, centre: float = 1.0, bound: float | None = None):
    if v < 0:
        raise ValueError(f"{name} must be non-negative, got {v}")
    lo, hi = centre - v, centre + v
    if bound is not None:
        if v > bound:
            raise ValueError(f"{name} must be in [0, {bound}], got {v}")
    else:
        lo = max(0.0, lo)
    return lo, hi


def color_jitter(
    x: Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p)`` per sample.

    Factors as ``torchvision``: brightness, contrast and saturation ~ U(max(0, 1 - v), 1 + v),
    hue shift ~ U(-hue, hue); the four operations run in an independent uniformly random order
    for every sample (``torchvision`` draws ``randperm(4)`` per image). A zero strength skips
    that operation, as in torchvision. 1-channel inputs get brightness and contrast only.

    Batched without a loop over the batch or a host synchronisation (every decision below uses
    the CPU draws): brightness, contrast and saturation are one blend per sample,
    ``target + f * (y - target)`` towards 0, mean luma or luma. The batch is sorted by the
    position of each sample's hue step, so that the blends before the hue step (aligned to end
    just before it), the hue step itself (once, for all samples) and the blends after it run
    on contiguous slices of the batch: 3 + 1 + 3 passes over slices instead of 4 full blends
    and 4 hue conversions.
    """
    b = x.shape[0]
    ranges = [
        _factor_range(brightness, "brightness"),
        _factor_range(contrast, "contrast"),
        _factor_range(saturation, "saturation"),
        _factor_range(hue, "hue", centre=0.0, bound=0.5),
    ]
    apply = torch.rand(b, generator=generator) < p  # [B]
    # [B, 4] random permutation per sample (ties have probability ~0: same as torch.argsort)
    order = torch.from_numpy(np.argsort(torch.rand(b, 4, generator=generator).numpy(), axis=1))
    u = torch.rand(b, 4, generator=generator).numpy()
    lo, hi = np.array(ranges, dtype=np.float32).T  # [4] each
    factors = torch.from_numpy((lo + (hi - lo) * u).astype(np.float32))  # [B, 4] by op
    rgb = x.shape[1] == 3
    enabled = torch.tensor([brightness > 0, contrast > 0, saturation > 0 and rgb, hue > 0 and rgb])
    return _jitter(x, apply, order, factors, enabled)


def _jitter(x: Tensor, apply: Tensor, order: Tensor, factors: Tensor, enabled: Tensor) -> Tensor:
    """Apply drawn jitter parameters (all CPU): ``apply`` [B] bool, ``order`` [B, 4] (op index at
    each position: 0 brightness, 1 contrast, 2 saturation, 3 hue), ``factors`` [B, 4] by op,
    ``enabled`` [4] bool. The bookkeeping runs in numpy on the host (a few microseconds per
    call instead of a torch dispatch per small op); the device gets one parameter tensor per
    pass."""
    b = x.shape[0]
    ap, en = apply.numpy(), enabled.numpy()
    if b == 0 or not ap.any() or not en.any():
        return x
    od, fa = order.numpy(), factors.numpy()
    active = en[od] & ap[:, None]  # [B, 4]: the op at this position runs
    f_at = np.where(active, np.take_along_axis(fa, od, 1), 1.0).astype(np.float32)  # 1: as is
    # hp: position of the hue step (4: no hue step), -1: sample not jittered; sorted ascending
    hp = (od == 3).argmax(1) if en[3] else np.full(b, 4)
    hp = np.where(ap, hp, -1)
    sort = np.argsort(hp, kind="stable")
    hp, od, f_at, shift = hp[sort], od[sort], f_at[sort], fa[sort, 3]
    bounds = np.searchsorted(hp, np.arange(-1, 6))  # bounds[k + 1]: first sample with hp >= k
    first = lambda k: int(bounds[k + 1])  # noqa: E731
    dev, dt = x.device, x.dtype
    y = x.index_select(0, torch.from_numpy(sort).to(dev, non_blocking=True))

    def blend_slice(lo: int, hi: int, pos: np.ndarray) -> None:  # samples lo..hi-1, op at pos
        rows = np.arange(lo, hi)
        op, f = od[rows, pos], f_at[rows, pos]
        changed = f != 1
        if not changed.any():
            return
        is_c, is_s = (op == 1) & changed, (op == 2) & changed
        params = torch.from_numpy(np.stack((f, is_c, is_s)).astype(np.float32))
        _blend_(y[lo:hi], params.to(dev, dt, non_blocking=True), bool(is_c.any()), bool(is_s.any()))

    # blends before the hue step, aligned so that they end just before it: pass j runs the
    # blend at position hp - 4 + j of every sample with hp >= 4 - j (a suffix of the batch)
    for j in range(4):
        lo = first(4 - j)
        if lo < b:
            blend_slice(lo, b, hp[lo:] - 4 + j)
    lo, hi = first(0), first(4)  # the hue step: every sample with 0 <= hp <= 3
    if hi > lo:
        y[lo:hi] = _rotate_hue(y[lo:hi], torch.from_numpy(shift[lo:hi]))
    # blends after it: pass j runs position hp + 1 + j for samples with hp <= 2 - j (a prefix)
    for j in range(3):
        hi = first(3 - j)
        if hi > lo:
            blend_slice(lo, hi, hp[lo:hi] + 1 + j)
    return y.index_select(0, torch.from_numpy(np.argsort(sort)).to(dev, non_blocking=True))


def _blend_(y: Tensor, params: Tensor, contrast: bool, saturation: bool) -> None:
    """In place on ``y`` [n, C, H, W]: ``clamp(target + f * (y - target), 0, 1)`` per sample, as
    torchvision's ``_blend``; ``params`` [3, n] on y's device: the factor ``f`` (1 leaves a sample
    unchanged) and 0/1 flags choosing the target: the mean luma (contrast), the luma
    (saturation), else 0 (brightness). ``contrast`` / ``saturation``: whether any flag is set."""
    f, c, s = params.view(3, -1, 1, 1, 1).unbind(0)
    if contrast or saturation:
        gray = _luma(y)  # [n, 1, H, W]
        if contrast:
            target = torch.addcmul(gray.mean(dim=(1, 2, 3), keepdim=True) * c, gray, s)
        else:
            target = gray * s
        torch.lerp(target, y, f, out=y)  # elementwise, so writing over its input is safe
    else:
        y.mul_(f)
    y.clamp_(0.0, 1.0)


def random_grayscale(
    x: Tensor,
    p: float = 0.2,
    *,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> Tensor:
    """``RandomGrayscale(p)``: luma replicated over the channels, per sample with probability p
    (computed on the chosen samples only; which ones is known on the host). ``inplace``: write
    into ``x`` (a pipeline's own intermediate) instead of a copy."""
    on = torch.rand(x.shape[0], generator=generator).numpy() < p
    if x.shape[1] == 1 or not on.any():
        return x
    sel = torch.from_numpy(np.flatnonzero(on)).to(x.device, non_blocking=True)
    gray = _luma(x.index_select(0, sel)).expand(-1, x.shape[1], -1, -1).contiguous()
    return x.index_copy_(0, sel, gray) if inplace else x.index_copy(0, sel, gray)


# ----------------------------------------------------------------------------- blur
_BLUR_MATRIX_MAX = 64  # up to this size the blur is a matrix product, above a depthwise conv


def _reflect_index(idx: Tensor, n: int) -> Tensor:
    """Reflect padding (edge not repeated, as ``F.pad(mode="reflect")``) for any offset."""
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    m = torch.remainder(idx, period)
    return torch.where(m >= n, period - m, m)


def _blur_matrix(sigma: Tensor, n: int, kernel_size: int) -> Tensor:
    """``[B, n, n]``: 1-D Gaussian blur with per-sample ``sigma`` and reflect padding."""
    r = kernel_size // 2
    t = torch.arange(-r, r + 1, device=sigma.device, dtype=sigma.dtype)  # [k]
    kern = torch.exp(-0.5 * (t.view(1, -1) / sigma.view(-1, 1)) ** 2)
    kern = kern / kern.sum(1, keepdim=True)  # [B, k]
    i = torch.arange(n, device=sigma.device).view(-1, 1)
    src = _reflect_index(i + torch.arange(-r, r + 1, device=sigma.device).view(1, -1), n)  # [n, k]
    b = sigma.shape[0]
    m = torch.zeros(b, n, n, device=sigma.device, dtype=sigma.dtype)
    m.scatter_add_(2, src.unsqueeze(0).expand(b, -1, -1), kern.unsqueeze(1).expand(-1, n, -1))
    return m


def gaussian_blur(
    x: Tensor,
    sigma: tuple[float, float] = (0.1, 2.0),
    p: float = 0.5,
    *,
    generator: torch.Generator | None = None,
    kernel_size: int | None = None,
) -> Tensor:
    """MoCo v2 ``RandomApply([GaussianBlur(sigma)], p)``: per-sample sigma ~ U(sigma), Gaussian
    blur with reflect padding, as ``[B, H, H] @ x @ [B, W, W].T`` matrix products (images up to
    64 px) or a per-sample depthwise separable convolution (larger images).

    MoCo v2 blurs with PIL's ``GaussianBlur(radius=sigma)`` (an extended box-blur approximation);
    here the exact Gaussian is used. ``kernel_size`` (odd) defaults to
    ``2 * ceil(3 * sigma_max) + 1`` (13 for sigma up to 2), i.e. +-3 sigma.
    """
    b, _, height, width = x.shape
    if kernel_size is None:
        kernel_size = 2 * math.ceil(3 * sigma[1]) + 1
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"gaussian_blur kernel_size must be odd and positive, got {kernel_size}")
    if not 0 < sigma[0] <= sigma[1]:
        raise ValueError(f"gaussian_blur sigma must satisfy 0 < min <= max, got {sigma}")
    on = torch.rand(b, generator=generator) < p
    s = sigma[0] + (sigma[1] - sigma[0]) * torch.rand(b, generator=generator)
    s = s.to(x.device, torch.float32, non_blocking=True)
    r = kernel_size // 2
    if max(height, width) <= _BLUR_MATRIX_MAX or r >= min(height, width):
        wy = _blur_matrix(s, height, kernel_size)
        wx = wy if width == height else _blur_matrix(s, width, kernel_size)
        blurred = _apply_separable(x, wy, wx)
    else:  # large images: a per-sample depthwise convolution (k taps instead of H per pixel)
        t = torch.arange(-r, r + 1, device=x.device, dtype=torch.float32)
        kern = torch.exp(-0.5 * (t.view(1, -1) / s.view(-1, 1)) ** 2)
        kern = (kern / kern.sum(1, keepdim=True)).to(x.dtype)  # [B, k]
        c = x.shape[1]
        kern = kern.repeat_interleave(c, 0)  # [B * C, k]: one kernel per image channel
        y = F.pad(x, (r, r, r, r), mode="reflect").reshape(1, b * c, height + 2 * r, -1)
        y = F.conv2d(y, kern.view(b * c, 1, kernel_size, 1), groups=b * c)
        y = F.conv2d(y, kern.view(b * c, 1, 1, kernel_size), groups=b * c)
        blurred = y.view(b, c, height, width)
    on_d = on.to(x.device, x.dtype, non_blocking=True).view(-1, 1, 1, 1)
    return torch.lerp(x, blurred, on_d)  # 0/1 weight: a select


class Normalize:
    """Per-channel ``(x - mean) / std`` as one fused ``x * (1 / std) - mean / std``, with the
    constants kept on each device they were used on (no host-to-device copy per call, which on a
    GPU would wait for the queued work)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"Normalize needs one positive std per mean, got {mean}, {std}")
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        scale = 1.0 / torch.tensor(self.std, dtype=torch.float64)
        self._scale = scale.float().view(1, -1, 1, 1)
        self._shift = (-torch.tensor(self.mean, dtype=torch.float64) * scale).float()
        self._shift = self._shift.view(1, -1, 1, 1)
        self._on: dict[tuple[str, torch.dtype], tuple[Tensor, Tensor]] = {}

    def __call__(self, x: Tensor) -> Tensor:
        key = (str(x.device), x.dtype)
        if key not in self._on:
            self._on[key] = (self._scale.to(x.device, x.dtype), self._shift.to(x.device, x.dtype))
        scale, shift = self._on[key]
        return torch.addcmul(shift, x, scale)


# ----------------------------------------------------------------------------- pipelines
def contrastive_views(
    x: Tensor,
    size: Sequence[int] | int,
    *,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (0.2, 1.0),
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
    p_jitter: float = 0.8,
    p_gray: float = 0.2,
    blur: tuple[float, float] | None = None,
    p_blur: float = 0.5,
    p_flip: float = 0.5,
) -> Tensor:
    """The i-Mix / MoCo v2 image augmentation of one view, in torchvision's order:
    RandomResizedCrop(size, scale) -> RandomApply(ColorJitter(*jitter), p_jitter) ->
    RandomGrayscale(p_gray) -> [RandomApply(GaussianBlur(blur), p_blur)] -> RandomHorizontalFlip.

    The CIFAR defaults are the official i-Mix CIFAR pipeline; ImageNet adds ``blur=(0.1, 2.0)``.
    Input ``[B, C, H, W]`` in [0, 1] (uint8 is scaled); output ``[B, C, *size]``, not normalised.
    """
    # The flip is drawn first and folded into the crop's resampling: jitter, grayscale
    # and blur act on every pixel alike (blur's kernel and reflect padding are symmetric), so
    # mirroring first gives what mirroring last gives, without a pass over the images.
    flip = torch.rand(x.shape[0], generator=generator) < p_flip
    x = random_resized_crop(x, size, scale=scale, generator=generator, hflip=flip)
    x = color_jitter(x, *jitter, p=p_jitter, generator=generator)
    x = random_grayscale(x, p_gray, generator=generator, inplace=True)  # x: the crop's output
    if blur is not None:
        x = gaussian_blur(x, blur, p_blur, generator=generator)
    return x
