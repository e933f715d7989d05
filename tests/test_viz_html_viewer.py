"""HTML viewer: one self-contained file (no network), data intact, script runs (node, when installed)."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from unihand.viz.html_viewer import viewer_html, write_viewer

# A minimal DOM + canvas stand-in: runs the page's script, drags, zooms, plays, scrubs.
SMOKE_JS = r"""
const fs = require("fs");
const html = fs.readFileSync(process.argv[2], "utf8");
const m = html.match(/<script>([\s\S]*?)<\/script>/);
const calls = {stroke: 0, arc: 0, fill: 0, closePath: 0};
const ctx = new Proxy({}, {get: (t, k) => k in calls ? () => { calls[k]++; } : (t[k] !== undefined ? t[k] : () => {}),
                           set: (t, k, v) => { t[k] = v; return true; }});
const L = {}, E = {};
function el(id) { return {id, style: {}, value: "1", clientWidth: 800, clientHeight: 600, getContext: () => ctx,
  addEventListener: (ev, fn) => { L[id + ":" + ev] = fn; }, setPointerCapture() {}}; }
global.document = {getElementById: id => (E[id] = E[id] || el(id))};
global.window = {devicePixelRatio: 1, addEventListener: (ev, fn) => { L["window:" + ev] = fn; }};
let rafs = []; global.requestAnimationFrame = fn => rafs.push(fn); global.performance = {now: () => 0};
eval(m[1]);
L["c:pointerdown"]({clientX: 0, clientY: 0, button: 0}); L["c:pointermove"]({clientX: 50, clientY: 20}); L["c:pointerup"]({});
L["c:wheel"]({deltaY: 120, preventDefault() {}});
E["play"].onclick();
for (let k = 1; k <= 3; k++) { const r = rafs; rafs = []; r.forEach(fn => fn(1000 * k)); }
const played = E["flabel"].textContent;
E["scrub"].value = "2"; E["scrub"].oninput();
const fills = calls.closePath, scrubbed = E["flabel"].textContent, badge = E["badge"].style.display;
L["window:keydown"]({code: "KeyM", preventDefault() {}});  // mesh off: no triangles drawn
const before = calls.closePath;
E["scrub"].value = "3"; E["scrub"].oninput();
console.log(JSON.stringify({strokes: calls.stroke, arcs: calls.arc, played, scrubbed, badge, fills, fills_mesh_off: calls.closePath - before,
                            mesh_button: E["meshbtn"].textContent}));
"""


def _joints(n=10):
    rng = np.random.default_rng(0)
    return np.array([0.0, 0.0, 0.5]) + rng.normal(0, 0.03, size=(n, 21, 3))


def test_self_contained_and_data_roundtrip(tmp_path) -> None:
    joints = _joints()
    infilled = np.zeros(10, bool)
    infilled[2] = True
    path = write_viewer(tmp_path / "v.html", joints, fps=30, infilled=infilled, title="a <b> & c", side="left hand")
    text = path.read_text()
    assert "<canvas" in text and "<script>" in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing fetched
    assert "http://" not in text and "https://" not in text
    assert "a &lt;b&gt; &amp; c" in text  # title escaped
    blob = re.search(r"const D = (\{.*?\});\n", text).group(1)
    data = json.loads(blob)
    assert data["frames"] == 10 and data["parents"][4] == 3 and data["infilled"][2] == 1
    back = np.array(data["joints"]).reshape(10, 21, 3) / data["scale"]
    np.testing.assert_allclose(back, joints, atol=1e-4)


def _mesh(n=10):
    rng = np.random.default_rng(1)
    verts = np.array([0.0, 0.0, 0.5]) + rng.normal(0, 0.04, size=(n, 40, 3))
    faces = rng.integers(0, 40, size=(60, 3))
    return verts, faces


def _cameras(n=10):
    T = np.repeat(np.eye(4)[None], n, axis=0)
    T[:, 0, 3] = np.linspace(0, 0.2, n)
    return T


def test_mesh_and_cameras_roundtrip(tmp_path) -> None:
    import base64

    joints = _joints()
    verts, faces = _mesh()
    K = np.array([[500.0, 0, 300], [0, 510, 200], [0, 0, 1]])
    text = viewer_html(joints, mesh_vertices=verts, mesh_faces=faces, mesh_label="capsule mesh",
                       camera_poses=_cameras(), K=K, image_size=(640, 480))
    data = json.loads(re.search(r"const D = (\{.*?\});\n", text).group(1))
    m = data["mesh"]
    assert (m["nv"], m["nf"], m["face_bytes"], m["label"]) == (40, 60, 2, "capsule mesh")
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(m["faces"]), "<u2").reshape(60, 3), faces)
    q = np.frombuffer(base64.b64decode(m["vertices"]), "<i2").reshape(10, 40, 3)
    wrist = np.array(data["joints"]).reshape(10, 21, 3)[:, 0] / data["scale"]  # offsets from the stored wrist
    np.testing.assert_allclose(wrist[:, None] + q * m["q"], verts, atol=m["q"])
    assert m["q"] < 1e-5  # 10 micrometre steps or finer
    cams = data["cameras"]
    np.testing.assert_allclose(np.array(cams["poses"]).reshape(10, 3, 4), _cameras()[:, :3], atol=1e-6)
    assert cams["hx"] == pytest.approx(320 / 500) and cams["hy"] == pytest.approx(240 / 510)
    assert cams["ox"] == pytest.approx(20 / 500) and cams["oy"] == pytest.approx(40 / 510)
    plain = json.loads(re.search(r"const D = (\{.*?\});\n", viewer_html(joints)).group(1))
    assert plain["mesh"] is None and plain["cameras"] is None
    with pytest.raises(ValueError, match="camera poses contain NaN"):
        bad = _cameras()
        bad[3, 1, 1] = np.nan
        viewer_html(joints, camera_poses=bad)
    with pytest.raises(ValueError, match="mesh vertices contain NaN"):
        viewer_html(joints, mesh_vertices=np.full_like(verts, np.nan), mesh_faces=faces)
    with pytest.raises(ValueError, match="index vertices"):
        viewer_html(joints, mesh_vertices=verts, mesh_faces=faces + 40)


def test_rejects_bad_joints() -> None:
    with pytest.raises(ValueError):
        viewer_html(np.zeros((0, 21, 3)))
    with pytest.raises(ValueError):
        viewer_html(np.full((2, 21, 3), np.nan))


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_script_runs(tmp_path) -> None:
    infilled = np.zeros(10, bool)
    infilled[2] = True
    verts, faces = _mesh()
    path = write_viewer(tmp_path / "v.html", _joints(), fps=30, infilled=infilled, mesh_vertices=verts,
                        mesh_faces=faces, camera_poses=_cameras())
    (tmp_path / "smoke.js").write_text(SMOKE_JS)
    out = subprocess.run(["node", str(tmp_path / "smoke.js"), str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["strokes"] > 100 and res["arcs"] >= 21
    assert res["played"] != "" and res["scrubbed"].startswith("frame 2 ")
    assert res["badge"] == "inline"  # frame 2 is infilled
    assert res["fills"] >= 60 and res["fills_mesh_off"] == 0 and res["mesh_button"] == "Mesh: off"
