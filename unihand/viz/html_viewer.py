"""A self-contained interactive HTML viewer of a skeleton motion (one file, inline JS, no CDN).

Open the file in any browser, offline: the 21-joint skeleton is drawn on a canvas with
perspective, one colour per finger, the wrist's path as a trail, a floor grid and the
first-frame camera (the canonical frame's origin). Controls: play/pause (button or space),
scrub (slider, arrow keys step a frame), speed, orbit by dragging, zoom with the wheel,
pan with shift-drag or the right button, double-click to reset the view. Frames that were
infilled (no detection) are flagged on screen and drawn dashed.

The view starts from the first camera (what the video showed), in the OpenCV convention
of the motion files: x right, y down, z away from the camera.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from unihand.data.io import atomic_write
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
<div id="help">drag: orbit &middot; wheel: zoom &middot; shift-drag: pan<br>space: play/pause &middot; &larr;/&rarr;: step &middot; double-click: reset</div>
<div id="bar"><button id="play">&#9654; Play</button>
<input id="scrub" type="range" min="0" value="0" step="1">
<select id="speed"><option value="0.25">0.25x</option><option value="0.5">0.5x</option><option value="1" selected>1x</option><option value="2">2x</option></select>
<button id="reset">Reset view</button></div>
<script>
"use strict";
const D = __DATA__;
const N = D.frames, J = 21, P = D.parents, S = D.scale;
const pts = new Float32Array(D.joints.length);
for (let i = 0; i < pts.length; i++) pts[i] = D.joints[i] / S;
const infilled = D.infilled;
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
function drawCamera() {
  const s = Math.min(0.04, radius / 3), o = project(0, 0, 0);
  const c = [[-s, -0.6 * s, s], [s, -0.6 * s, s], [s, 0.6 * s, s], [-s, 0.6 * s, s]].map(p => project(p[0], p[1], p[2]));
  for (let k = 0; k < 4; k++) { line(o, c[k], "#888", 1, false); line(c[k], c[(k + 1) % 4], "#888", 1, false); }
  const ax = [[s, 0, 0, "#e55"], [0, s, 0, "#5e5"], [0, 0, s, "#59f"]];
  for (const a of ax) line(o, project(a[0], a[1], a[2]), a[3], 2, false);
  if (o[2] > 1e-3) { ctx.fillStyle = "#aaa"; ctx.fillText("camera (frame 1)", o[0] + 6, o[1] - 6); }
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
});
window.addEventListener("resize", resize);
resize();
</script></body></html>
"""


def viewer_html(
    joints: np.ndarray, fps: float = 30.0, infilled: np.ndarray | None = None, title: str = "UniHand motion",
    side: str = "", first_frame: int = 0,
) -> str:
    """The viewer page for ``joints`` (N, 21, 3) metres (OpenCV camera frame) as a string."""
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
    }
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return _TEMPLATE.replace("__TITLE__", html.escape(title)).replace("__DATA__", blob)


def write_viewer(
    path: str | os.PathLike, joints: np.ndarray, fps: float = 30.0, infilled: np.ndarray | None = None,
    title: str = "UniHand motion", side: str = "", first_frame: int = 0,
) -> Path:
    """Atomically write the self-contained viewer page of ``joints`` (N, 21, 3) to ``path``."""
    text = viewer_html(joints, fps, infilled, title, side, first_frame)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), suffix=".html")
