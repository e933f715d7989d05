"""A self-contained interactive HTML viewer of a hand motion (one file, inline JS, no CDN).

Open the file in any browser, offline: the 21-joint skeleton is drawn on a canvas with
perspective, one colour per finger, the wrist's path as a trail, a floor grid and the
first-frame camera (the canonical frame's origin). Controls: play/pause (button or space),
scrub (slider, arrow keys step a frame), speed, orbit by dragging, zoom with the wheel,
pan with shift-drag or the right button, double-click to reset the view, ``M`` or the button
to show or hide the mesh. Frames that were infilled (no detection) are flagged on screen and
drawn dashed.

Optional layers:

- a **mesh** (``mesh_vertices`` (N, V, 3), ``mesh_faces`` (F, 3)): filled, shaded triangles in
  depth order under the skeleton. Vertices are stored as little-endian int16 offsets from each
  frame's wrist (step ``q`` metres, a few micrometres), base64; faces as uint16/uint32. Callers
  keep it light (``unihand.export`` gives a decimated MANO mesh or a coarse capsule mesh).
- **camera frustums** (``camera_poses`` T_cano_from_cam (N, 4, 4), OpenCV camera axes): the
  current frame's camera drawn bright, every few frames' faint, and the path of the camera
  centre (red and dashed, the frustum red, where ``camera_valid`` says the camera was not
  registered); shaped by ``K`` and ``image_size`` when given. Without poses, the first camera is drawn
  at the origin.

The view starts from the first camera (what the video showed), in the OpenCV convention
of the motion files: x right, y down, z away from the camera.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import numpy as np

from unihand.files import atomic_write
from unihand.hand.joints import OPENPOSE_PARENTS

_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
html,body{margin:0;height:100%;background:#15171c;color:#e8e8e8;font:13px system-ui,sans-serif;overflow:hidden}
#c{position:absolute;inset:0 0 56px 0;width:100%;height:calc(100% - 56px);cursor:grab}
#bar{position:absolute;left:0;right:0;bottom:0;height:56px;display:flex;align-items:center;gap:10px;padding:0 12px;
 background:#1e2128;border-top:1px solid #333}
#bar button,#bar select{background:#2c313b;color:#eee;border:1px solid #444;border-radius:4px;padding:5px 10px;font:inherit}
#scrub{flex:1}
#info{position:absolute;left:12px;top:10px;line-height:1.5;pointer-events:none;text-shadow:0 0 3px #000}
#badge{display:none;background:#d33;color:#fff;border-radius:3px;padding:1px 6px;margin-left:6px}
#help{position:absolute;right:12px;top:10px;color:#999;text-align:right;pointer-events:none}
</style></head><body>
<canvas id="c"></canvas>
<div id="info"><b>__TITLE__</b><br><span id="flabel"></span><span id="badge">INFILLED</span></div>
<div id="help">drag: orbit &middot; wheel: zoom &middot; shift-drag: pan<br>space: play/pause &middot; &larr;/&rarr;: step &middot; M: mesh &middot; double-click: reset</div>
<div id="bar"><button id="play">&#9654; Play</button>
<input id="scrub" type="range" min="0" value="0" step="1">
<select id="speed"><option value="0.25">0.25x</option><option value="0.5">0.5x</option><option value="1" selected>1x</option><option value="2">2x</option></select>
<button id="reset">Reset view</button><button id="meshbtn" style="display:none">Mesh: on</button></div>
<script>
"use strict";
const D = __DATA__;
const N = D.frames, J = 21, P = D.parents, S = D.scale;
const pts = new Float32Array(D.joints.length);
for (let i = 0; i < pts.length; i++) pts[i] = D.joints[i] / S;
const infilled = D.infilled;
function b64(s) { const b = atob(s), u = new Uint8Array(b.length); for (let i = 0; i < b.length; i++) u[i] = b.charCodeAt(i); return u.buffer; }
const M = D.mesh ? {nv: D.mesh.nv, nf: D.mesh.nf, q: D.mesh.q, v: new Int16Array(b64(D.mesh.vertices)),
  f: D.mesh.face_bytes === 2 ? new Uint16Array(b64(D.mesh.faces)) : new Uint32Array(b64(D.mesh.faces))} : null;
const CAM = D.cameras;
let showMesh = !!M;
const COLORS = ["#ff5050", "#ffbe28", "#50dc50", "#28aaff", "#c85aff"];
const finger = j => j === 0 ? 2 : Math.floor((j - 1) / 4);
let cx = 0, cy = 0, cz = 0, ymax = -1e9, radius = 0.05;
(function () {
  let lo = [1e9, 1e9, 1e9], hi = [-1e9, -1e9, -1e9];
  for (let i = 0; i < N * J; i++) for (let k = 0; k < 3; k++) {
    const v = pts[3 * i + k]; if (v < lo[k]) lo[k] = v; if (v > hi[k]) hi[k] = v; }
  cx = (lo[0] + hi[0]) / 2; cy = (lo[1] + hi[1]) / 2; cz = (lo[2] + hi[2]) / 2; ymax = hi[1];
  radius = Math.max(0.08, 0.5 * Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]));
})();
const canvas = document.getElementById("c"), ctx = canvas.getContext("2d");
const scrub = document.getElementById("scrub"), playBtn = document.getElementById("play");
const flabel = document.getElementById("flabel"), badge = document.getElementById("badge");
scrub.max = N - 1;
let view, frame = 0, playing = false, last = 0, acc = 0;
function resetView() {
  // look along +z like the first camera (the video's view), close enough for the motion to fill the view
  view = {yaw: 0, pitch: 0, dist: Math.max(2.6 * radius, 0.15), panx: 0, pany: 0};
}
resetView();
function resize() {
  const r = window.devicePixelRatio || 1;
  canvas.width = canvas.clientWidth * r; canvas.height = canvas.clientHeight * r;
  ctx.setTransform(r, 0, 0, r, 0, 0); draw();
}
function project(x, y, z) {
  x -= cx; y -= cy; z -= cz;
  const cyw = Math.cos(view.yaw), syw = Math.sin(view.yaw);
  let x1 = cyw * x - syw * z, z1 = syw * x + cyw * z;
  const cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
  let y2 = cp * y - sp * z1, z2 = sp * y + cp * z1;
  const depth = z2 + view.dist;
  const w = canvas.clientWidth, h = canvas.clientHeight, f = 0.9 * Math.min(w, h);
  const d = Math.max(depth, 1e-3);
  return [w / 2 + f * x1 / d + view.panx, h / 2 + f * y2 / d + view.pany, depth, f / d];
}
function line(a, b, color, width, dashed) {
  if (a[2] <= 1e-3 || b[2] <= 1e-3) return;
  ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dashed ? [6, 5] : []);
  ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
}
function drawGrid() {
  const y = ymax + 0.03, step = radius / 4, n = 8;
  ctx.setLineDash([]);
  for (let k = -n; k <= n; k++) {
    line(project(cx + k * step, y, cz - n * step), project(cx + k * step, y, cz + n * step), "#2a2f38", 1, false);
    line(project(cx - n * step, y, cz + k * step), project(cx + n * step, y, cz + k * step), "#2a2f38", 1, false);
  }
}
function camPoint(t, p) {  // camera t's point p (camera axes) -> canonical frame
  if (!CAM || !CAM.poses) return p;
  const T = CAM.poses, o = 12 * t;
  return [T[o] * p[0] + T[o + 1] * p[1] + T[o + 2] * p[2] + T[o + 3],
          T[o + 4] * p[0] + T[o + 5] * p[1] + T[o + 6] * p[2] + T[o + 7],
          T[o + 8] * p[0] + T[o + 9] * p[1] + T[o + 10] * p[2] + T[o + 11]];
}
function drawFrustum(t, color, width, label) {
  const s = Math.min(0.04, radius / 3);
  const hx = CAM && CAM.hx ? CAM.hx : 1, hy = CAM && CAM.hy ? CAM.hy : 0.6, ox = CAM && CAM.ox ? CAM.ox : 0, oy = CAM && CAM.oy ? CAM.oy : 0;
  const P = p => { const w = camPoint(t, p); return project(w[0], w[1], w[2]); };
  const o = P([0, 0, 0]);
  const c = [[-hx + ox, -hy + oy], [hx + ox, -hy + oy], [hx + ox, hy + oy], [-hx + ox, hy + oy]].map(p => P([p[0] * s, p[1] * s, s]));
  for (let k = 0; k < 4; k++) { line(o, c[k], color, width, false); line(c[k], c[(k + 1) % 4], color, width, false); }
  if (label) {
    const ax = [[s, 0, 0, "#e55"], [0, s, 0, "#5e5"], [0, 0, s, "#59f"]];
    for (const a of ax) line(o, P(a), a[3], 2, false);
    if (o[2] > 1e-3) { ctx.fillStyle = "#aaa"; ctx.fillText(label, o[0] + 6, o[1] - 6); }
  }
}
function drawCamera() {
  if (!CAM || !CAM.poses) { drawFrustum(0, "#888", 1, "camera (frame 1)"); return; }
  const every = Math.max(1, Math.round(N / 8));
  for (let t = 0; t < N; t += every) if (t !== frame) drawFrustum(t, "rgba(136,136,136,0.45)", 1, "");
  ctx.setLineDash([]); ctx.lineWidth = 1;
  let prev = project(...camPoint(0, [0, 0, 0]));
  for (let t = 1; t < N; t++) {  // the path; red dashed where the camera was not registered
    const q = project(...camPoint(t, [0, 0, 0])), bad = CAM.valid && !(CAM.valid[t] && CAM.valid[t - 1]);
    ctx.setLineDash(bad ? [3, 3] : []); ctx.strokeStyle = bad ? "rgba(230,60,60,0.8)" : "rgba(255,170,60,0.6)";
    ctx.beginPath(); ctx.moveTo(prev[0], prev[1]); ctx.lineTo(q[0], q[1]); ctx.stroke(); prev = q;
  }
  ctx.setLineDash([]);
  const ok = !CAM.valid || CAM.valid[frame];
  drawFrustum(frame, ok ? "#ffaa3c" : "#e63c3c", 1.5, `camera (frame ${frame + D.first_frame}${ok ? "" : ", not registered"})`);
}
function drawMesh() {
  const nv = M.nv, base = frame * nv * 3, w = frame * J * 3, wx = pts[w], wy = pts[w + 1], wz = pts[w + 2];
  const q = new Array(nv), W = new Float64Array(3 * nv);
  for (let i = 0; i < nv; i++) {
    const x = wx + M.q * M.v[base + 3 * i], y = wy + M.q * M.v[base + 3 * i + 1], z = wz + M.q * M.v[base + 3 * i + 2];
    q[i] = project(x, y, z); W[3 * i] = x; W[3 * i + 1] = y; W[3 * i + 2] = z;
  }
  const order = [];
  for (let k = 0; k < M.nf; k++) {
    const a = M.f[3 * k], b = M.f[3 * k + 1], c = M.f[3 * k + 2];
    if (q[a][2] <= 1e-3 || q[b][2] <= 1e-3 || q[c][2] <= 1e-3) continue;
    order.push([k, q[a][2] + q[b][2] + q[c][2]]);
  }
  order.sort((u, v) => v[1] - u[1]);
  for (const [k] of order) {
    const a = M.f[3 * k], b = M.f[3 * k + 1], c = M.f[3 * k + 2];
    // shade by how squarely the face is seen (2D area over 3D area), a headlight
    const A = q[a], B = q[b], C = q[c];
    const area2 = Math.abs((B[0] - A[0]) * (C[1] - A[1]) - (B[1] - A[1]) * (C[0] - A[0]));
    const ux = W[3 * b] - W[3 * a], uy = W[3 * b + 1] - W[3 * a + 1], uz = W[3 * b + 2] - W[3 * a + 2];
    const vx = W[3 * c] - W[3 * a], vy = W[3 * c + 1] - W[3 * a + 1], vz = W[3 * c + 2] - W[3 * a + 2];
    const area3 = Math.hypot(uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx);
    const f = (A[3] + B[3] + C[3]) / 3, lit = Math.min(1, area3 > 0 ? area2 / (area3 * f * f) : 0);
    const g = 0.35 + 0.65 * lit;
    ctx.fillStyle = `rgb(${Math.round(225 * g)},${Math.round(180 * g)},${Math.round(150 * g)})`;
    ctx.beginPath(); ctx.moveTo(A[0], A[1]); ctx.lineTo(B[0], B[1]); ctx.lineTo(C[0], C[1]); ctx.closePath(); ctx.fill();
  }
}
function drawTrail() {
  ctx.setLineDash([]); ctx.lineWidth = 1.5;
  for (let t = 1; t < N; t++) {
    const a = project(pts[(t - 1) * J * 3], pts[(t - 1) * J * 3 + 1], pts[(t - 1) * J * 3 + 2]);
    const b = project(pts[t * J * 3], pts[t * J * 3 + 1], pts[t * J * 3 + 2]);
    if (a[2] <= 1e-3 || b[2] <= 1e-3) continue;
    const near = Math.abs(t - frame) < 15 ? 0.9 : 0.25;
    ctx.strokeStyle = infilled[t] ? `rgba(230,60,60,${near})` : `rgba(160,170,190,${near})`;
    ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
  }
}
function draw() {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  ctx.clearRect(0, 0, w, h);
  drawGrid(); drawCamera(); drawTrail();
  if (M && showMesh) drawMesh();
  const base = frame * J * 3, q = [];
  for (let j = 0; j < J; j++) q.push(project(pts[base + 3 * j], pts[base + 3 * j + 1], pts[base + 3 * j + 2]));
  const bones = [];
  for (let j = 1; j < J; j++) bones.push([j, (q[j][2] + q[P[j]][2]) / 2]);
  bones.sort((a, b) => b[1] - a[1]);
  const dashed = !!infilled[frame];
  for (const [j] of bones) line(q[P[j]], q[j], COLORS[finger(j)], Math.min(7, Math.max(2, 0.006 * q[j][3])), dashed);
  ctx.setLineDash([]);
  for (let j = 0; j < J; j++) {
    if (q[j][2] <= 1e-3) continue;
    ctx.fillStyle = COLORS[finger(j)];
    ctx.beginPath(); ctx.arc(q[j][0], q[j][1], Math.min(6, Math.max(2.5, 0.005 * q[j][3])), 0, 2 * Math.PI); ctx.fill();
  }
  flabel.textContent = `frame ${frame + D.first_frame} / ${N - 1 + D.first_frame}  (${(frame / D.fps).toFixed(2)} s)  ${D.side}`;
  badge.style.display = dashed ? "inline" : "none";
  scrub.value = frame;
}
function setFrame(f) { frame = Math.max(0, Math.min(N - 1, f)); draw(); }
function setPlaying(p) { playing = p; playBtn.innerHTML = p ? "&#10074;&#10074; Pause" : "&#9654; Play"; last = performance.now(); acc = 0; if (p) requestAnimationFrame(tick); }
function tick(now) {
  if (!playing) return;
  acc += (now - last) / 1000 * D.fps * parseFloat(document.getElementById("speed").value); last = now;
  if (acc >= 1) { const k = Math.floor(acc); acc -= k; setFrame((frame + k) % N); }
  requestAnimationFrame(tick);
}
playBtn.onclick = () => setPlaying(!playing);
document.getElementById("reset").onclick = () => { resetView(); draw(); };
const meshBtn = document.getElementById("meshbtn");
function toggleMesh() { if (!M) return; showMesh = !showMesh; meshBtn.textContent = showMesh ? "Mesh: on" : "Mesh: off"; draw(); }
if (M) { meshBtn.style.display = "inline"; meshBtn.title = D.mesh.label; meshBtn.onclick = toggleMesh; }
scrub.oninput = () => { setPlaying(false); setFrame(parseInt(scrub.value)); };
let drag = null;
canvas.addEventListener("contextmenu", e => e.preventDefault());
canvas.addEventListener("pointerdown", e => { drag = {x: e.clientX, y: e.clientY, pan: e.shiftKey || e.button === 2}; canvas.setPointerCapture(e.pointerId); canvas.style.cursor = "grabbing"; });
canvas.addEventListener("pointermove", e => {
  if (!drag) return;
  const dx = e.clientX - drag.x, dy = e.clientY - drag.y; drag.x = e.clientX; drag.y = e.clientY;
  if (drag.pan) { view.panx += dx; view.pany += dy; }
  else { view.yaw -= dx * 0.01; view.pitch = Math.max(-1.55, Math.min(1.55, view.pitch + dy * 0.01)); }
  draw();
});
canvas.addEventListener("pointerup", () => { drag = null; canvas.style.cursor = "grab"; });
canvas.addEventListener("wheel", e => { e.preventDefault(); view.dist *= Math.exp(e.deltaY * 0.001); view.dist = Math.max(0.05, view.dist); draw(); }, {passive: false});
canvas.addEventListener("dblclick", () => { resetView(); draw(); });
window.addEventListener("keydown", e => {
  if (e.code === "Space") { e.preventDefault(); setPlaying(!playing); }
  else if (e.code === "ArrowRight") { setPlaying(false); setFrame(frame + 1); }
  else if (e.code === "ArrowLeft") { setPlaying(false); setFrame(frame - 1); }
  else if (e.code === "KeyM") toggleMesh();
});
window.addEventListener("resize", resize);
resize();
</script></body></html>
"""


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _mesh_data(vertices: np.ndarray, faces: np.ndarray, wrist: np.ndarray, label: str) -> dict:
    """The mesh as the page stores it: int16 offsets from each frame's (stored) wrist, base64."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces)
    n = wrist.shape[0]
    if v.ndim != 3 or v.shape[0] != n or v.shape[2] != 3 or v.shape[1] == 0:
        raise ValueError(f"mesh vertices must be (N={n}, V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"mesh faces must be (F, 3) integers, got {f.shape} {f.dtype}")
    if f.min() < 0 or f.max() >= v.shape[1]:
        raise ValueError(f"mesh faces index vertices 0..{v.shape[1] - 1}, found {f.min()}..{f.max()}")
    if not np.all(np.isfinite(v)):
        raise ValueError("mesh vertices contain NaN or infinite values")
    rel = v - wrist[:, None, :]
    step = max(float(np.abs(rel).max()) / 32000.0, 1e-6)
    q = np.round(rel / step).astype("<i2")
    wide = v.shape[1] > 65535
    return {"nv": int(v.shape[1]), "nf": int(f.shape[0]), "q": step, "label": label,
            "face_bytes": 4 if wide else 2, "faces": _b64(f.astype("<u4" if wide else "<u2")), "vertices": _b64(q)}


def _camera_data(camera_poses: np.ndarray | None, K: np.ndarray | None, image_size, n: int,
                 camera_valid: np.ndarray | None = None) -> dict | None:
    """Frustum shape from ``K`` / ``image_size``, the per-frame camera poses (rounded) and which of them
    were registered (``camera_valid``)."""
    if camera_poses is None and (K is None or image_size is None):
        return None
    out: dict = {"poses": None, "valid": None}
    if camera_valid is not None:
        valid = np.asarray(camera_valid, bool).reshape(-1)
        if valid.shape != (n,):
            raise ValueError(f"camera_valid must be (N={n},), got {valid.shape}")
        out["valid"] = [int(v) for v in valid]
    if K is not None and image_size is not None:
        K = np.asarray(K, np.float64)
        w, h = (float(x) for x in np.asarray(image_size).reshape(2))
        if not (np.all(np.isfinite(K)) and K[0, 0] > 0 and K[1, 1] > 0 and w > 0 and h > 0):
            raise ValueError("K / image_size must be finite with positive focal lengths and size")
        out.update(hx=w / 2 / K[0, 0], hy=h / 2 / K[1, 1], ox=(w / 2 - K[0, 2]) / K[0, 0], oy=(h / 2 - K[1, 2]) / K[1, 1])
    if camera_poses is not None:
        T = np.asarray(camera_poses, np.float64)
        if T.shape != (n, 4, 4):
            raise ValueError(f"camera poses must be (N={n}, 4, 4), got {T.shape}")
        if not np.all(np.isfinite(T)):
            raise ValueError("camera poses contain NaN or infinite values")
        out["poses"] = np.round(T[:, :3, :4].reshape(-1), 6).tolist()
    return out


def viewer_html(
    joints: np.ndarray, fps: float = 30.0, infilled: np.ndarray | None = None, title: str = "UniHand motion",
    side: str = "", first_frame: int = 0, *, mesh_vertices: np.ndarray | None = None,
    mesh_faces: np.ndarray | None = None, mesh_label: str = "mesh", camera_poses: np.ndarray | None = None,
    K: np.ndarray | None = None, image_size: np.ndarray | None = None, camera_valid: np.ndarray | None = None,
) -> str:
    """The viewer page for ``joints`` (N, 21, 3) metres (OpenCV camera frame) as a string; optional
    mesh (``mesh_vertices`` (N, V, 3) with ``mesh_faces`` (F, 3)) and cameras (module doc)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (21, 3) or joints.shape[0] == 0:
        raise ValueError(f"joints must be (N, 21, 3) with N >= 1, got {joints.shape}")
    if not np.all(np.isfinite(joints)):
        raise ValueError("joints contain NaN or infinite values")
    n = joints.shape[0]
    scale = 10000  # stored as integers of 0.1 mm: compact and exact enough to view
    data = {
        "frames": n, "fps": float(fps), "parents": list(OPENPOSE_PARENTS), "scale": scale, "side": side,
        "first_frame": int(first_frame),
        "infilled": [int(b) for b in (np.zeros(n, bool) if infilled is None else np.asarray(infilled, bool))],
        "joints": np.round(joints.reshape(-1) * scale).astype(np.int64).tolist(),
        "mesh": None, "cameras": _camera_data(camera_poses, K, image_size, n, camera_valid),
    }
    if mesh_vertices is not None:
        if mesh_faces is None:
            raise ValueError("mesh_vertices given without mesh_faces")
        wrist = np.round(joints[:, 0] * scale) / scale  # the page's wrist, so offsets add up exactly
        data["mesh"] = _mesh_data(mesh_vertices, mesh_faces, wrist, mesh_label)
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return _TEMPLATE.replace("__TITLE__", html.escape(title)).replace("__DATA__", blob)


def write_viewer(
    path: str | os.PathLike, joints: np.ndarray, fps: float = 30.0, infilled: np.ndarray | None = None,
    title: str = "UniHand motion", side: str = "", first_frame: int = 0, **layers,
) -> Path:
    """Atomically write the self-contained viewer page of ``joints`` (N, 21, 3) to ``path``
    (``layers``: the mesh and camera arguments of :func:`viewer_html`)."""
    text = viewer_html(joints, fps, infilled, title, side, first_frame, **layers)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), suffix=".html")
