"""Full-frame rendering of a synthetic sequence with OpenCV drawing (no GPU, no mesh).

The hand is drawn from its 21 joints: a capsule per bone (per-finger widths that taper toward the
tips, scaled with the hand's size and the depth), the palm as a filled polygon, and a forearm
(bare or in a sleeve). Every part is depth-sorted and drawn back to front with a dark outline, a
body colour shaded by depth (nearer is brighter) and a soft highlight, so fingers in front of the
palm read correctly. Occluders in front of the hand are drawn after it, the others before it,
over a cluttered background.

Frame geometry: frames are square ``size x size`` RGB images of the *full* camera image,
letterboxed: the camera image is scaled so its longer side fills the frame and is centred, the
rest is black (:mod:`unihand.geometry.letterbox`, ``center`` mode). :class:`Letterbox` maps camera
pixels to frame pixels and gives the frame's ``K``.
Backgrounds (:data:`BACKGROUNDS`): ``far``, a canvas at infinity, which a moving camera sees
through the rotation homography ``K R K^-1`` (its translation shows no parallax); or ``room``
(:class:`Room`), a textured box around the camera (walls, floor, ceiling) with a table under the
hand, ray-cast per pixel in every frame, so a moving camera sees 3D-consistent parallax and
camera estimation can be tested against the known poses.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from unihand.data.synthetic.scene import BONE_RADIUS, BONES, PALM, Occluders, occluder_polygons, project_occluders
from unihand.geometry.canonical import rigid_inverse
from unihand.geometry.letterbox import letterbox

#: Skin tones (RGB) from light to dark, jittered per sequence.
SKIN_TONES = np.array(
    [[255, 219, 186], [241, 194, 160], [224, 172, 135], [198, 140, 100], [161, 102, 70], [112, 70, 45], [80, 50, 35]],
    dtype=np.float64,
)

_TIPS = {4, 8, 12, 16, 20}
FOREARM_LENGTH = 0.24  # metres drawn from the wrist
FOREARM_RADIUS = 0.027
_SHIFT = 4  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT
#: Kinds of background (see the module doc).
BACKGROUNDS = ("far", "room")


@dataclass
class RenderStyle:
    """Per-sequence appearance, drawn from the sequence's render generator."""

    skin: np.ndarray  # (3,) RGB float
    sleeve: np.ndarray | None  # (3,) RGB float, or None for a bare forearm
    background: np.ndarray  # (S + 2m, S + 2m, 3) uint8 canvas, m = margin
    margin: int
    gain: float  # global brightness multiplier
    bias: float
    noise: np.ndarray | None  # (S + 16, S + 16, 3) int16 sensor-noise tile
    blur: float  # Gaussian blur sigma in pixels (0: none)


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    c0, c1 = rng.uniform(0, 255, size=3), rng.uniform(0, 255, size=3)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = (np.cos(ang) * xx + np.sin(ang) * yy) / max(h, w)
    s = (s - s.min()) / max(float(s.max() - s.min()), 1e-6)
    return c0 + s[..., None] * (c1 - c0)


def make_background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, int]:
    """A cluttered background canvas (uint8 RGB) with a margin for camera rotations.

    Layers: a colour gradient, low-frequency colour blobs, a random texture (noise, stripes or a
    checkerboard) and 6-20 random shapes (rectangles, circles, ellipses, polylines), some of them
    skin-coloured distractors.
    """
    margin = size // 4
    n = size + 2 * margin
    img = _gradient(rng, n, n).astype(np.float32)
    # colour blobs: a tiny random image upsampled smoothly
    g = int(rng.integers(2, 7))
    blobs = cv2.resize(rng.uniform(0, 255, size=(g, g, 3)).astype(np.float32), (n, n), interpolation=cv2.INTER_CUBIC)
    alpha = rng.uniform(0.2, 0.7)
    img = (1 - alpha) * img + alpha * blobs
    # texture
    kind = int(rng.integers(3))
    if kind == 0:
        cells = int(rng.integers(8, 64))
        tex = cv2.resize(rng.uniform(-1, 1, size=(cells, cells, 1)).astype(np.float32), (n, n),
                         interpolation=cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_NEAREST)
    else:
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        ang = rng.uniform(0, np.pi)
        period = rng.uniform(6, 40)
        u = np.cos(ang) * xx + np.sin(ang) * yy
        if kind == 1:
            tex = np.sin(2 * np.pi * u / period)
        else:
            v = -np.sin(ang) * xx + np.cos(ang) * yy
            tex = np.sign(np.sin(np.pi * u / period) * np.sin(np.pi * v / period))
    img = img + tex.reshape(n, n, 1) * rng.uniform(5, 40)
    img = np.clip(img, 0, 255).astype(np.uint8)
    # shapes
    for _ in range(int(rng.integers(6, 21))):
        if rng.random() < 0.15:
            color = SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 10, size=3)
        else:
            color = rng.uniform(0, 255, size=3)
        color = tuple(float(c) for c in np.clip(color, 0, 255))
        thick = -1 if rng.random() < 0.6 else int(rng.integers(1, 6))
        c = rng.uniform(0, n, size=2)
        r = rng.uniform(0.03, 0.3) * n
        shape = int(rng.integers(4))
        if shape == 0:
            p0 = (c - r * rng.uniform(0.2, 1, size=2)).astype(int)
            p1 = (c + r * rng.uniform(0.2, 1, size=2)).astype(int)
            cv2.rectangle(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), color, thick, cv2.LINE_AA)
        elif shape == 1:
            cv2.circle(img, tuple(int(v) for v in c), int(r * 0.5), color, thick, cv2.LINE_AA)
        elif shape == 2:
            axes = (int(r * rng.uniform(0.2, 0.8)), int(r * rng.uniform(0.1, 0.5)))
            cv2.ellipse(img, tuple(int(v) for v in c), axes, float(rng.uniform(0, 180)), 0, 360, color, thick, cv2.LINE_AA)
        else:
            pts = (c + rng.normal(0, r * 0.5, size=(int(rng.integers(3, 7)), 2))).astype(np.int32)
            if thick < 0:
                cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
            else:
                cv2.polylines(img, [pts], bool(rng.random() < 0.5), color, thick, cv2.LINE_AA)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0))
    return img, margin


def sample_style(rng: np.random.Generator, size: int) -> RenderStyle:
    """Appearance of one sequence: skin tone, sleeve, background, lighting, sensor noise, blur."""
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.1) + rng.normal(0, 6, size=3)
    sleeve = rng.uniform(0, 255, size=3) if rng.random() < 0.6 else None
    background, margin = make_background(rng, size)
    sigma = rng.uniform(0, 6) if rng.random() < 0.7 else 0.0
    noise = (rng.normal(0, sigma, size=(size + 16, size + 16, 3))).astype(np.int16) if sigma > 0.5 else None
    return RenderStyle(
        skin=np.clip(skin, 0, 255), sleeve=sleeve, background=background, margin=margin,
        gain=rng.uniform(0.75, 1.2), bias=rng.uniform(-20, 20), noise=noise,
        blur=rng.uniform(0.4, 1.0) if rng.random() < 0.3 else 0.0,
    )


@dataclass
class Room:
    """A box room around the camera path, canonical frame (metres), with a table under the hand.

    ``atlas`` holds one square ``tile`` texture per surface, side by side: walls -x, +x, -y
    (ceiling, y is down), +y (floor), -z, +z, then the table top, each stretched over its surface.
    """

    lo: np.ndarray  # (3,) box corner
    hi: np.ndarray  # (3,)
    table: np.ndarray  # (5,) y of the top, x0, x1, z0, z1
    atlas: np.ndarray  # (tile, 7 * tile, 3) uint8 RGB
    tile: int


def _surface_texture(rng: np.random.Generator, tile: int) -> np.ndarray:
    """A wall's texture: the cluttered background of :func:`make_background` plus small objects
    (posters, shelves, boxes: corners to track), under a per-surface light level."""
    img, m = make_background(rng, tile)
    img = np.ascontiguousarray(img[m:m + tile, m:m + tile])
    for _ in range(int(rng.integers(20, 60))):
        c = rng.uniform(0, tile, size=2)
        half = rng.uniform(0.01, 0.06, size=2) * tile
        color = tuple(float(v) for v in rng.uniform(0, 255, size=3))
        if rng.random() < 0.7:
            p0, p1 = (c - half).astype(int), (c + half).astype(int)
            cv2.rectangle(img, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), color, -1, cv2.LINE_AA)
        else:
            cv2.circle(img, (int(c[0]), int(c[1])), int(half[0]), color, -1, cv2.LINE_AA)
    return cv2.convertScaleAbs(img, alpha=float(rng.uniform(0.6, 1.1)))


def sample_room(rng: np.random.Generator, T_cano_from_cam: np.ndarray, joints: np.ndarray, size: int,
                blank_walls: int = 0) -> Room:
    """A room around the camera path ``T_cano_from_cam`` (N, 4, 4) and the hand's canonical ``joints``
    (N, 21, 3): walls 1-3.5 m away (at least 0.3 m from the camera path, 0.6 m beyond the hand), a
    floor 0.9-1.6 m below the first camera, a table top 5-20 cm below the hand's lowest point and
    at least 20 cm below the camera. Textures have ``tile`` = 256-1024 pixels (by ``size``).
    ``blank_walls``: that many of the four side walls (and then the ceiling) are painted one flat
    colour, nothing to track (drawn after the rest, so 0 gives the room as before)."""
    cams = np.asarray(T_cano_from_cam, np.float64)[:, :3, 3]
    hand = np.asarray(joints, np.float64).reshape(-1, 3)
    lo = -np.array([rng.uniform(1.2, 2.5), rng.uniform(0.8, 1.5), rng.uniform(1.0, 2.5)])
    hi = np.array([rng.uniform(1.2, 2.5), rng.uniform(0.9, 1.6), rng.uniform(1.0, 3.5)])
    lo = np.minimum(lo, cams.min(0) - 0.3)
    hi = np.maximum(hi, cams.max(0) + 0.3)
    hi[2] = max(hi[2], hand[:, 2].max() + 0.6)
    y_top = max(hand[:, 1].max() + rng.uniform(0.05, 0.2), cams[:, 1].max() + 0.2)
    hi[1] = max(hi[1], y_top + 0.3)
    cx = float(hand[:, 0].mean())
    table = np.array([
        y_top, max(lo[0] + 0.05, cx - rng.uniform(0.5, 1.0)), min(hi[0] - 0.05, cx + rng.uniform(0.5, 1.0)),
        max(0.1, hand[:, 2].min() - 0.3), min(hi[2] - 0.05, hand[:, 2].max() + rng.uniform(0.3, 0.8)),
    ])
    tile = int(np.clip(2 ** int(np.ceil(np.log2(max(size, 1)))), 256, 1024))
    atlas = np.concatenate([_surface_texture(rng, tile) for _ in range(7)], axis=1)
    if blank_walls:
        walls = [int(k) for k in rng.permutation([0, 1, 4, 5])[:min(blank_walls, 4)]] + [2]
        for k in walls:
            atlas[:, k * tile:(k + 1) * tile] = rng.uniform(90, 230, size=3).astype(np.uint8)
    return Room(lo=lo, hi=hi, table=table, atlas=atlas, tile=tile)


def room_depth(room: Room, K: np.ndarray, T_cano_from_cam: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width) float64 depth (metres along the camera's z) of the room seen by one camera: each
    pixel's ray to the table top where it meets it, else to the wall it leaves the box through (the
    geometry :func:`render_room` draws; hands and occluders are not in it)."""
    R = np.asarray(T_cano_from_cam[:3, :3], np.float64)
    c = np.asarray(T_cano_from_cam[:3, 3], np.float64)
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(np.asarray(K, np.float64)).T  # camera z = 1
    d = rays @ R.T  # canonical directions; the distance along one is the depth
    with np.errstate(divide="ignore", invalid="ignore"):
        wall = np.where(d > 0, (room.hi - c) / d, (room.lo - c) / d)
        wall = np.where(np.abs(d) < 1e-12, np.inf, wall).min(-1)
        y_top, x0, x1, z0, z1 = (float(x) for x in room.table)
        t = (y_top - c[1]) / d[..., 1]
    hit = c + np.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0)[..., None] * d
    on_table = (d[..., 1] > 1e-12) & (t > 0) & (t < wall) & (hit[..., 0] >= x0) & (hit[..., 0] <= x1) \
        & (hit[..., 2] >= z0) & (hit[..., 2] <= z1)
    return np.where(on_table, t, wall)


def _half_plane(row: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width) uint8 mask of the pixels p = (x, y, 1) with ``row . p > 0`` (a line clips the image)."""
    poly = np.array([[-1.0, -1.0], [width, -1.0], [width, height], [-1.0, height]])
    val = poly @ row[:2] + row[2]
    out = []
    for k in range(4):  # Sutherland-Hodgman against one line
        p, q, vp, vq = poly[k], poly[(k + 1) % 4], val[k], val[(k + 1) % 4]
        if vp > 0:
            out.append(p)
        if (vp > 0) != (vq > 0):
            out.append(p + (q - p) * (vp / (vp - vq)))
    mask = np.zeros((height, width), np.uint8)
    if len(out) >= 3:
        cv2.fillConvexPoly(mask, np.round(np.array(out) * _ONE).astype(np.int32), 255, cv2.LINE_8, _SHIFT)
    return mask


def render_room(room: Room, K: np.ndarray, T_cano_from_cam: np.ndarray, width: int, height: int) -> np.ndarray:
    """The room seen by one camera (pose ``T_cano_from_cam`` (4, 4), intrinsics ``K``, a
    ``width`` x ``height`` image): (height, width, 3) uint8 RGB.

    Each surface is a plane: its texture goes into the image through the plane's homography
    ``K R^T [e_u s_u, e_v s_v, X_0 - c]`` (OpenCV's warp, bilinear), kept where the texture lands
    and where the rays point toward the plane (a half-plane of the image; the camera is inside the
    box, so every ray meets exactly one wall). The table top is drawn last, over the walls.
    """
    R = np.asarray(T_cano_from_cam[:3, :3], np.float64)
    c = np.asarray(T_cano_from_cam[:3, 3], np.float64)
    K = np.asarray(K, np.float64)
    to_dir = R @ np.linalg.inv(K)  # pixel -> ray direction in the canonical frame
    t = room.tile
    img = np.empty((height, width, 3), np.uint8)
    img[:] = room.atlas.reshape(-1, 3).mean(0).astype(np.uint8)  # seams show the mean, not black
    y_top, x0, x1, z0, z1 = (float(v) for v in room.table)
    table_lo = np.array([x0, y_top, z0])
    table_hi = np.array([x1, y_top, z1])
    surfaces = [(a, side, room.lo, room.hi) for a in range(3) for side in (0, 1)] + [(1, 1, table_lo, table_hi)]
    for k, (a, side, lo, hi) in enumerate(surfaces):
        j, m = [i for i in range(3) if i != a]
        x_0 = lo.astype(np.float64).copy()
        x_0[a] = (lo if side == 0 else hi)[a] if k < 6 else y_top
        basis = np.zeros((3, 3))
        basis[j, 0] = (hi[j] - lo[j]) / (t - 1)
        basis[m, 1] = (hi[m] - lo[m]) / (t - 1)
        basis[:, 2] = x_0 - c
        H = K @ R.T @ basis
        toward = to_dir[a] * (1.0 if side == 1 else -1.0)  # rays with d_a of the plane's sign
        half = _half_plane(toward, width, height)
        if not half.any():
            continue
        tex = np.ascontiguousarray(room.atlas[:, k * t:(k + 1) * t])
        rgba = np.dstack([tex, np.full((t, t), 255, np.uint8)])
        warped = cv2.warpPerspective(rgba, H, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                     borderValue=0)
        mask = cv2.bitwise_and(half, (warped[..., 3] > 127).view(np.uint8) * 255)
        cv2.copyTo(warped[..., :3], mask, img)
    return img


def _clip_near(p: np.ndarray, q: np.ndarray, near: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip camera-frame segments (N, 3) against the plane z = near; returns p, q and a keep mask."""
    zp, zq = p[:, 2], q[:, 2]
    keep = (zp > near) | (zq > near)
    s = np.clip((near - zp) / np.where(np.abs(zq - zp) < 1e-9, 1e-9, zq - zp), 0.0, 1.0)
    p2 = np.where((zp < near)[:, None], p + s[:, None] * (q - p), p)
    s2 = np.clip((near - zq) / np.where(np.abs(zp - zq) < 1e-9, 1e-9, zp - zq), 0.0, 1.0)
    q2 = np.where((zq < near)[:, None], q + s2[:, None] * (p - q), q)
    return p2, q2, keep


def _shade(color: np.ndarray, factor: float) -> tuple[float, float, float]:
    c = np.clip(color * factor, 0, 255)
    return float(c[0]), float(c[1]), float(c[2])


def _fixed(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0] * _ONE)), int(round(p[1] * _ONE))


def _capsule(img: np.ndarray, a: np.ndarray, b: np.ndarray, r: float, color: np.ndarray, shade: float) -> None:
    """A shaded capsule of radius ``r`` pixels from a to b: outline, body, highlight."""
    pa, pb = _fixed(a), _fixed(b)
    t = max(1, int(round(2 * r)))
    cv2.line(img, pa, pb, _shade(color, 0.55 * shade), t + 2, cv2.LINE_AA, _SHIFT)
    cv2.line(img, pa, pb, _shade(color, shade), t, cv2.LINE_AA, _SHIFT)
    if r >= 2.5:
        off = np.array([-0.2, -0.25]) * r
        cv2.line(img, _fixed(a + off), _fixed(b + off), _shade(color, 1.1 * shade), max(1, int(round(0.5 * r))),
                 cv2.LINE_AA, _SHIFT)


#: Bones (indices into BONES) drawn as part of the palm: wrist to thumb CMC and to the four MCPs.
_PALM_BONES = [i for i, (_, c) in enumerate(BONES) if c in (1, 5, 9, 13, 17)]
_FINGER_BONES = [i for i in range(len(BONES)) if i not in _PALM_BONES]


def draw_hand(img: np.ndarray, joints_cam: np.ndarray, K: np.ndarray, style: RenderStyle) -> None:
    """Draw one hand (21 camera-frame joints, metres) into ``img`` with frame intrinsics ``K``.

    The forearm goes first (it joins the hand at the wrist, so the hand covers the junction);
    then the palm (polygon + metacarpals, one solid plate) and the 15 finger bones, back to front.
    """
    z = joints_cam[:, 2]
    if np.all(z < 0.05):
        return
    palm_len = float(np.linalg.norm(joints_cam[9] - joints_cam[0]))
    scale = palm_len / 0.095
    fxy = np.array([K[0, 0], K[1, 1]])
    f = 0.5 * (K[0, 0] + K[1, 1])
    zmin = float(max(z.min(), 0.05))

    def shade_at(depth: float) -> float:
        return 1.08 - 0.45 * float(np.clip((depth - zmin) / (0.12 * scale), 0.0, 1.0))

    # forearm: a tapered limb from the wrist away from the fingers, clipped at the near plane
    axis = joints_cam[0] - joints_cam[9]
    axis /= max(np.linalg.norm(axis), 1e-9)
    fa_p, fa_q, keep = _clip_near(joints_cam[None, 0], joints_cam[None, 0] + axis[None] * FOREARM_LENGTH * scale)
    if keep[0]:
        p, q = fa_p[0], fa_q[0]
        pp = p[:2] / p[2] * fxy + K[:2, 2]
        qq = q[:2] / q[2] * fxy + K[:2, 2]
        r_p = 0.85 * FOREARM_RADIUS * scale * f / p[2]
        r_q = 1.15 * FOREARM_RADIUS * scale * f / q[2]
        color = style.sleeve if style.sleeve is not None else style.skin
        sh = shade_at(0.5 * (p[2] + q[2]))
        d = qq - pp
        nrm = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-6)
        quad = np.array([pp + nrm * r_p, qq + nrm * r_q, qq - nrm * r_q, pp - nrm * r_p])
        pts = np.round(quad * _ONE).astype(np.int32)
        cv2.fillConvexPoly(img, pts, _shade(color, 0.85 * sh), cv2.LINE_AA, _SHIFT)
        cv2.polylines(img, [pts], True, _shade(color, 0.55 * sh), 2, cv2.LINE_AA, _SHIFT)

    zc = np.maximum(z, 0.05)
    px = joints_cam[:, :2] / zc[:, None] * fxy + K[:2, 2]
    bz = 0.5 * (z[BONES[:, 0]] + z[BONES[:, 1]])
    items = [(float(bz[i]), i) for i in _FINGER_BONES]
    items.append((float(z[PALM].mean()), -1))
    items.sort(key=lambda it: -it[0])
    for depth, i in items:
        if i >= 0:
            a, b = BONES[i]
            if z[a] < 0.05 or z[b] < 0.05:
                continue
            r = BONE_RADIUS[b] * scale * f / depth
            pa, pb = px[a], px[b]
            if b in _TIPS:  # the tip joint is the fingertip's surface: end the capsule before it
                d = pb - pa
                n = np.linalg.norm(d)
                if n > 1e-6:
                    pb = pb - d / n * min(0.7 * r, 0.5 * n)
            _capsule(img, pa, pb, r, style.skin, shade_at(depth))
        else:
            if np.any(z[PALM] < 0.05):
                continue
            sh = shade_at(depth)
            pts = np.round(px[PALM] * _ONE).astype(np.int32)
            dark, body = _shade(style.skin, 0.55 * sh), _shade(style.skin, 0.95 * sh)
            segs = [(_fixed(px[BONES[k, 0]]), _fixed(px[BONES[k, 1]]),
                     max(1, int(round(2 * BONE_RADIUS[BONES[k, 1]] * scale * f / bz[k])))) for k in _PALM_BONES]
            cv2.polylines(img, [pts], True, dark, 3, cv2.LINE_AA, _SHIFT)
            for pa, pb, t in segs:
                cv2.line(img, pa, pb, dark, t + 2, cv2.LINE_AA, _SHIFT)
            cv2.fillPoly(img, [pts], body, cv2.LINE_AA, _SHIFT)
            for pa, pb, t in segs:
                cv2.line(img, pa, pb, body, t, cv2.LINE_AA, _SHIFT)


def _draw_occluder(img: np.ndarray, poly: np.ndarray, color: np.ndarray, pattern: int, shade: float) -> None:
    pts = np.round(poly * _ONE).astype(np.int32)
    col = color.astype(np.float64)
    cv2.fillPoly(img, [pts], _shade(col, shade), cv2.LINE_AA, _SHIFT)
    if pattern == 1:  # stripes: chords between mirror-symmetric outline points (inside the convex shape)
        v = len(poly)
        for k in range(v // 12, v // 2 - v // 12 + 1, max(1, v // 12)):
            cv2.line(img, _fixed(poly[k]), _fixed(poly[(v // 2 - k) % v]), _shade(255 - col, shade), 2, cv2.LINE_AA,
                     _SHIFT)
    elif pattern == 2:  # two-tone: a lighter inner region
        c = poly.mean(axis=0)
        inner = np.round((c + 0.55 * (poly - c)) * _ONE).astype(np.int32)
        cv2.fillPoly(img, [inner], _shade(col, 1.3 * shade), cv2.LINE_AA, _SHIFT)
    cv2.polylines(img, [pts], True, _shade(col, 0.5 * shade), 2, cv2.LINE_AA, _SHIFT)


def motion_blur_kernels(T_cano_from_cam: np.ndarray, K: np.ndarray, exposure: float, depth: float = 2.0) -> list:
    """Per frame, a linear motion-blur kernel (float32, sums to 1) or None: the image centre's path
    (a point ``depth`` metres ahead) over ``exposure`` of the frame interval, from the neighbouring
    poses; a camera turning at 100 degrees per second smears a 90-degree 640 px frame over ~9 px
    at an exposure of 0.5."""
    n = len(T_cano_from_cam)
    T_cam = rigid_inverse(T_cano_from_cam)
    out: list = []
    for i in range(n):
        a, b = max(i - 1, 0), min(i + 1, n - 1)
        if a == b:
            out.append(None)
            continue
        X = T_cano_from_cam[i, :3, :3] @ np.array([0.0, 0.0, depth]) + T_cano_from_cam[i, :3, 3]
        px = []
        for j in (a, b):
            c = T_cam[j, :3, :3] @ X + T_cam[j, :3, 3]
            px.append(K[:2, :2] @ (c[:2] / max(c[2], 1e-3)))
        v = (px[1] - px[0]) / (b - a) * exposure  # pixels smeared during the exposure
        length = float(np.linalg.norm(v))
        if length < 1.5:
            out.append(None)
            continue
        k = int(np.ceil(length)) | 1
        ker = np.zeros((k, k), np.float32)
        c = (k - 1) / 2
        d = v / length * (length - 1) / 2
        cv2.line(ker, (int(round((c - d[0]) * _ONE)), int(round((c - d[1]) * _ONE))),
                 (int(round((c + d[0]) * _ONE)), int(round((c + d[1]) * _ONE))), 1.0, 1, cv2.LINE_AA, _SHIFT)
        out.append(ker / max(float(ker.sum()), 1e-6))
    return out


def render_frames(
    joints_cam: np.ndarray, K: np.ndarray, image_size: np.ndarray, T_cano_from_cam: np.ndarray,
    occluders: Occluders, style: RenderStyle, size: int = 224, room: Room | None = None,
    blur_kernels: list | None = None,
) -> np.ndarray:
    """Render N frames.

    Args:
        joints_cam: (N, 21, 3) camera-frame joints of each frame (metres).
        K: (3, 3) camera intrinsics; image_size: (W, H) of the camera.
        T_cano_from_cam: (N, 4, 4) camera trajectory (for the background and occluders).
        occluders: the scene's objects (canonical frame).
        style: appearance from :func:`sample_style` with the same ``size``.
        room: a 3D background (:func:`sample_room`) instead of ``style.background`` at infinity.
        blur_kernels: per frame, a motion-blur kernel or None (:func:`motion_blur_kernels`); None: sharp.

    Returns:
        (N, size, size, 3) uint8 RGB frames (letterboxed, see module doc).
    """
    n = joints_cam.shape[0]
    lb = letterbox(image_size, size)
    Kf = lb.frame_K(K)
    Kinv = np.linalg.inv(Kf)
    hand_depth = joints_cam[:, :, 2].mean(axis=1)
    T_cam_from_cano = rigid_inverse(T_cano_from_cam)  # as the conditions: same occluder depths
    occ2d = project_occluders(occluders, T_cam_from_cano, Kf, hand_depth)
    polys = occluder_polygons(occ2d)
    m = style.margin
    offset = np.array([[1.0, 0, m], [0, 1.0, m], [0, 0, 1.0]])
    static = np.allclose(T_cano_from_cam[:, :3, :3], np.eye(3))
    frames = np.empty((n, size, size, 3), dtype=np.uint8)
    ox, oy = lb.offset
    room_still = None
    blur = [None] * n if blur_kernels is None else blur_kernels
    if room is not None:  # rendered inside the letterbox only
        K_active = Kf.copy()
        K_active[:2, 2] -= lb.offset

        def room_frame(T: np.ndarray) -> np.ndarray:
            img = np.zeros((size, size, 3), np.uint8)
            img[oy:oy + lb.active_h, ox:ox + lb.active_w] = render_room(room, K_active, T, lb.active_w, lb.active_h)
            return img

        if static and np.allclose(T_cano_from_cam[:, :3, 3], T_cano_from_cam[:1, :3, 3]):
            room_still = room_frame(T_cano_from_cam[0])
    for i in range(n):
        if room_still is not None:
            img = room_still.copy()
        elif room is not None:
            img = room_frame(T_cano_from_cam[i])
        elif static:
            img = style.background[m:m + size, m:m + size].copy()
        else:  # frame pixel -> canonical-camera pixel through the rotation (background at infinity)
            H = offset @ Kf @ T_cano_from_cam[i, :3, :3] @ Kinv
            img = cv2.warpPerspective(style.background, H, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                      borderMode=cv2.BORDER_REFLECT)
        order = np.argsort(-occ2d.depth[:, i]) if occluders.count else []
        for o in order:
            if not occ2d.front[o, i] and occ2d.depth[o, i] > 0.05:
                _draw_occluder(img, polys[o, i], occluders.colors[o], int(occluders.patterns[o]), 0.8)
        draw_hand(img, joints_cam[i], Kf, style)
        for o in order:
            if occ2d.front[o, i]:
                _draw_occluder(img, polys[o, i], occluders.colors[o], int(occluders.patterns[o]), 1.0)
        if blur[i] is not None:
            img = cv2.filter2D(img, -1, blur[i], borderType=cv2.BORDER_REPLICATE)
        if style.blur > 0:
            img = cv2.GaussianBlur(img, (0, 0), style.blur)
        if style.gain != 1.0 or style.bias != 0.0:
            img = cv2.convertScaleAbs(img, alpha=style.gain, beta=style.bias)
        if style.noise is not None:
            dx, dy = (i * 7) % 16, (i * 11) % 16
            img = np.clip(img.astype(np.int16) + style.noise[dy:dy + size, dx:dx + size], 0, 255).astype(np.uint8)
        if ox:
            img[:, :ox] = 0
            img[:, size - ox:] = 0
        if oy:
            img[:oy] = 0
            img[size - oy:] = 0
        frames[i] = img
    return frames
