"""Exporters: the registry, the capsule mesh, GLB / OBJ read back by third-party readers, the
``unihand export`` CLI and its bad inputs, and the all-or-nothing output set."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from unihand.data.io import Motion
from unihand.errors import UserError
from unihand.export import REGISTRY, export_motion, parse_formats
from unihand.export.gltf import CV_TO_YUP
from unihand.export.mesh import MeshSequence, cluster_decimate, motion_mesh
from unihand.export.output_set import STAGING_PREFIX, OutputSet, recover
from unihand.hand import KinematicHand
from unihand.hand.capsule_mesh import build_capsule_mesh, posed_capsule_vertices
from unihand.hand.joints import MANO_TO_OPENPOSE, OPENPOSE_PARENTS

N = 10


def make_motion(n: int, is_right: bool = True, seed: int = 0) -> Motion:
    """A smooth random MANO motion with its kinematic-hand joints and per-frame camera poses."""
    from scipy.spatial.transform import Rotation

    from unihand.hand import KinematicHand
    from unihand.hand.model import fk_numpy

    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n)[:, None]
    go = np.array([0.4, -2.2, 0.3]) + 0.5 * np.sin(2 * np.pi * t * np.array([1.0, 0.7, 1.3]))
    hp = 0.25 * np.sin(2 * np.pi * t + rng.uniform(0, 6, 45)) + rng.normal(0, 0.2, 45)
    betas = np.tile(rng.normal(0, 0.8, 10), (n, 1))
    transl = np.array([0.02, 0.05, 0.45]) + 0.05 * np.sin(2 * np.pi * t * np.array([0.5, 1.0, 0.8]))
    mano = np.concatenate([go, hp, betas, transl], axis=1)
    joints = fk_numpy(KinematicHand(is_right=is_right), mano)[0]
    T = np.repeat(np.eye(4)[None], n, axis=0)
    T[:, :3, :3] = Rotation.from_euler("y", 20 * t, degrees=True).as_matrix()
    T[:, :3, 3] = 0.1 * t * np.array([1.0, 0.0, 0.2])
    return Motion.from_mano(mano, joints=joints, is_right=is_right, fps=30.0,
                            K=np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), image_size=np.array([640, 480]),
                            extra={"T_cano_from_cam": T.astype(np.float32)})


@pytest.fixture(scope="module")
def motion() -> Motion:
    return make_motion(N, is_right=True, seed=2)


@pytest.fixture(scope="module")
def motion_file(motion, tmp_path_factory) -> Path:
    return motion.save(tmp_path_factory.mktemp("m") / "walk.npz")


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = b - a
    t = np.clip(np.einsum("...i,...i->...", p - a, d) / np.einsum("...i,...i->...", d, d), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * d), axis=-1)


# ------------------------------------------------------------------------------------------------
# the built-in hand's mesh


def test_capsule_mesh_is_closed_and_outward() -> None:
    mesh = build_capsule_mesh(KinematicHand())
    F, V = mesh.faces, mesh.rest_vertices
    edges = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    directed = set(map(tuple, edges))
    assert len(directed) == len(edges) and all((b, a) in directed for a, b in directed)  # closed, consistent
    for b in np.unique(mesh.bone):  # every part encloses a positive volume (outward normals)
        faces = F[np.isin(F, np.flatnonzero(mesh.bone == b)).all(1)]
        vol = np.einsum("fi,fi->f", V[faces[:, 0]], np.cross(V[faces[:, 1]], V[faces[:, 2]])).sum() / 6
        assert vol > 1e-7
    assert mesh.num_vertices == 14 + 15 * (2 + 2 * 3 * 12)  # palm hull + 15 capsules


def test_capsule_mesh_follows_the_motion_joints(motion) -> None:
    """Posed by the MANO parameters, each finger capsule stays at its radius around the bone
    between the motion's own joints (those come from the same parameters by FK)."""
    hand = KinematicHand(is_right=motion.is_right)
    verts, mesh = posed_capsule_vertices(hand, motion.global_orient, motion.hand_pose, motion.betas, motion.transl)
    assert verts.shape == (N, mesh.num_vertices, 3)
    rest16 = mesh.rest_joints16  # the rest joints of the shape the mesh was built for
    joints = motion.joints.astype(np.float64)
    checked = 0
    for m in range(1, 16):
        p = MANO_TO_OPENPOSE.index(m)
        j = p + 1
        if j in (4, 8, 12, 16, 20):
            continue  # the distal capsule is shortened to end at the tip
        sel = mesh.bone == m
        r_rest = _segment_distance(mesh.rest_vertices[sel], rest16[m], rest16[MANO_TO_OPENPOSE[j]])
        r_posed = _segment_distance(verts[:, sel], joints[:, None, p], joints[:, None, j])
        np.testing.assert_allclose(r_posed, np.broadcast_to(r_rest, r_posed.shape), atol=2e-5)
        assert 0.006 < r_rest.mean() < 0.011
        checked += 1
    assert checked == 10
    # the fingertips are on the surface of their capsules' caps (within 0.1 mm)
    for tip in (4, 8, 12, 16, 20):
        sel = mesh.bone == MANO_TO_OPENPOSE[OPENPOSE_PARENTS[tip]]
        gap = np.linalg.norm(verts[:, sel] - joints[:, None, tip], axis=-1).min(1)
        assert gap.max() < 1e-4


def test_mesh_choice_mano_or_capsule(motion, tmp_path) -> None:
    from unihand.hand.model import fk_numpy, load_hand_model
    from unihand.hand.testing import write_random_mano

    cap = motion_mesh(motion)
    assert cap.kind == "capsule" and cap.vertices.shape[0] == N
    mano_dir = write_random_mano(tmp_path / "mano")
    mano = motion_mesh(motion, mano_dir=mano_dir)
    hand = load_hand_model(mano_dir, is_right=True)
    assert mano.kind == "mano" and mano.vertices.shape == (N, 778, 3) and mano.faces.shape == (1538, 3)
    np.testing.assert_allclose(mano.vertices, fk_numpy(hand, motion.mano().astype(np.float64))[1], atol=1e-9)


def test_cluster_decimation_means_of_members(motion) -> None:
    mesh = motion_mesh(motion)
    small = cluster_decimate(mesh, mesh.vertices[0], 300)
    assert small.vertices.shape[1] <= 300 and small.vertices.shape[1] > 100
    assert small.faces.max() < small.vertices.shape[1] and len(small.faces) > 100
    f = small.faces
    assert ((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])).all()
    # the centroid of the hand is kept (each cluster is the mean of its vertices)
    assert np.abs(small.vertices.mean(1) - mesh.vertices.mean(1)).max() < 0.01


# ------------------------------------------------------------------------------------------------
# GLB / OBJ read back by third-party readers


def test_glb_read_back_by_trimesh_and_pygltflib(motion, tmp_path) -> None:
    trimesh = pytest.importorskip("trimesh")
    pygltflib = pytest.importorskip("pygltflib")
    mesh = motion_mesh(motion)
    path = REGISTRY["glb"].writer(motion, tmp_path / "m.glb", mesh=mesh)
    scene = trimesh.load(path, process=False)
    geoms = [scene.geometry[f"frame_{k:05d}"] for k in range(N)]
    assert len(scene.geometry) == N
    for k, g in enumerate(geoms):
        assert g.vertices.shape == mesh.vertices.shape[1:] and len(g.faces) == len(mesh.faces)
        np.testing.assert_allclose(g.vertices, mesh.vertices[k] @ CV_TO_YUP.T, atol=1e-6)  # Y-up, float32
    np.testing.assert_array_equal(geoms[3].faces, mesh.faces)

    g = pygltflib.GLTF2().load(str(path))
    blob = g.binary_blob()

    def read(i: int) -> np.ndarray:
        a = g.accessors[i]
        v = g.bufferViews[a.bufferView]
        width = {"SCALAR": 1, "VEC3": 3}[a.type]
        start = (v.byteOffset or 0) + (a.byteOffset or 0)
        return np.frombuffer(blob, "<f4", a.count * width, start).reshape(a.count, width)

    (anim,) = g.animations
    assert len(anim.channels) == N and {s.interpolation for s in anim.samplers} == {"STEP"}
    fps = float(motion.fps)
    for k in range(N):  # at the middle of frame k, exactly frame k's node is shown
        t = (k + 0.5) / fps
        shown = []
        for ch in anim.channels:
            s = anim.samplers[ch.sampler]
            times, scale = read(s.input)[:, 0], read(s.output)
            key = max(np.searchsorted(times, t, side="right") - 1, 0)
            if scale[key, 0] > 0.5:
                shown.append(g.nodes[ch.target.node].name)
        assert shown == [f"frame_{k:05d}"]
    assert g.asset.extras["frames"] == N and g.asset.extras["mesh"] == "capsule"


def test_obj_folder(motion, tmp_path) -> None:
    trimesh = pytest.importorskip("trimesh")
    mesh = motion_mesh(motion)
    folder = REGISTRY["obj"].writer(motion, tmp_path / "m_obj", mesh=mesh)
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"frame_{k:05d}.obj" for k in range(N)]
    for k in (0, N - 1):
        t = files[k].read_text()
        assert t.count("\nv ") + t.startswith("v ") == mesh.vertices.shape[1] and t.count("\nf ") == len(mesh.faces)
        back = trimesh.load(files[k], process=False)
        np.testing.assert_allclose(back.vertices, mesh.vertices[k], atol=6e-7)  # canonical frame, 6 decimals
        np.testing.assert_array_equal(back.faces, mesh.faces)
    # writing again replaces the folder whole (fewer frames: no stale frame files)
    short = Motion.from_mano(motion.mano()[:3], joints=motion.joints[:3], is_right=True, fps=motion.fps)
    REGISTRY["obj"].writer(short, folder)
    assert len(list(folder.iterdir())) == 3 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------------------------------------
# the registry and the CLI


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys):
    """``unihand ARGV`` in this process (as the console script runs it: UserError -> one line, 2);
    any other exception propagates, i.e. would be a traceback."""
    from unihand.cli import main

    def run(argv: list[str]) -> _Result:
        code = main(argv)
        out = capsys.readouterr()
        return _Result(code, out.out, out.err)

    return run


def test_parse_formats() -> None:
    assert parse_formats("obj, GLB,obj") == ["obj", "glb"]
    assert parse_formats("all") == list(REGISTRY) == ["npz", "json", "bvh", "html", "png", "obj", "glb"]
    with pytest.raises(UserError, match="unknown export format 'fbx'"):
        parse_formats("glb,fbx")


def test_export_cli_writes_every_format(motion, motion_file, tmp_path, cli) -> None:
    out = tmp_path / "o"
    res = cli(["export", str(motion_file), "--format", "all", "-o", str(out)])
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["walk.npz", "walk.json", "walk.bvh", "walk.html", "walk.png", "walk_obj", "walk.glb"])
    assert len(list((out / "walk_obj").iterdir())) == N
    back = Motion.load(out / "walk.npz")
    np.testing.assert_array_equal(back.joints, motion.joints)
    s = json.loads((out / "walk.json").read_text())
    assert s["frames"] == N and s["hand"] == "right" and s["duration_s"] == pytest.approx(N / motion.fps)
    step = np.linalg.norm(np.diff(motion.joints[:, 0].astype(np.float64), axis=0), axis=-1).sum()
    assert s["wrist_path_length_m"] == pytest.approx(step, abs=1e-6) and s["camera_poses"]
    html = (out / "walk.html").read_text()
    assert '"mesh":{"nv":' in html and '"cameras":{"poses":[' in html
    assert (out / "walk.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "walk.glb").read_bytes()[:4] == b"glTF"


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_export_cli_bad_inputs_exit_2_one_line(motion, motion_file, tmp_path, cli) -> None:
    out = tmp_path / "o"
    nan = tmp_path / "nan.npz"
    arrays = dict(np.load(motion_file))
    arrays["joints"] = arrays["joints"].copy()
    arrays["joints"][4, 7, 1] = np.nan
    np.savez(nan, **arrays)
    bad_cam = tmp_path / "badcam.npz"
    arrays = dict(np.load(motion_file))
    arrays["T_cano_from_cam"] = arrays["T_cano_from_cam"].copy()
    arrays["T_cano_from_cam"][6, 0, 3] = np.inf
    np.savez(bad_cam, **arrays)
    cases = [
        (["export", str(nan), "-o", str(out)], "field 'joints' contains NaN"),
        (["export", str(bad_cam), "--format", "json,html", "-o", str(out)], "field 'T_cano_from_cam'"),
        (["export", str(tmp_path / "missing.npz"), "-o", str(out)], "no such file"),
        (["export", str(motion_file), "--format", "glb,fbx", "-o", str(out)], "unknown export format 'fbx'"),
    ]
    for argv, match in cases:
        res = cli(argv)
        assert res.returncode == 2, (argv, res.stderr)
        assert res.stderr.count("\n") == 1 and match in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert _listing(out) == []  # nothing written, not even part of the set
    res = cli(["export", str(bad_cam), "--format", "json,html", "-o", str(out)])
    assert "frame 6" in res.stderr and "badcam.npz" in res.stderr


def test_nonfinite_mesh_is_refused_before_writing(motion, tmp_path) -> None:
    bad = MeshSequence(np.full((N, 5, 3), np.nan), np.array([[0, 1, 2]]), "capsule")
    with pytest.raises(UserError, match=r"field 'vertices' contains NaN .*1?0 of 10 frames.*not written"):
        export_motion(motion, tmp_path / "o", "json,glb", stem="m", mesh=bad)
    assert _listing(tmp_path / "o") == []


def test_writer_failure_leaves_no_partial_set(motion, tmp_path, monkeypatch) -> None:
    out = tmp_path / "o"
    export_motion(motion, out, "json,bvh", stem="m")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("unihand.viz.trajectory.plot_trajectory", boom)
    with pytest.raises(UserError, match="No space left"):
        export_motion(motion, out, "json,bvh,png", stem="m", summary={"note": "new"})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_generate_writes_formats_next_to_the_motion(tmp_path, cli) -> None:
    out = tmp_path / "g" / "sample.npz"
    res = cli(["generate", "-o", str(out), "--frames", "8", "--steps", "1", "--refine", "off",
                "--format", "bvh,html,png,glb"])
    assert res.returncode == 0, res.stderr
    assert _listing(out.parent) == ["sample.bvh", "sample.glb", "sample.html", "sample.npz", "sample.png"]
    assert Motion.load(out).num_frames == 8
    res = cli(["generate", "-o", str(tmp_path / "h" / "x.npz"), "--format", "fbx"])
    assert res.returncode == 2 and "unknown export format" in res.stderr and not (tmp_path / "h").exists()


# ------------------------------------------------------------------------------------------------
# the output set: all old or all new


OLD = {"a.txt": b"old a", "b.txt": b"old b", "gone.txt": b"old only"}
NEW = {"a.txt": b"new a", "b.txt": b"new b", "c.txt": b"new only"}
OWNED = {"a.txt", "b.txt", "c.txt", "gone.txt"}


def _setup(d: Path) -> None:
    d.mkdir(exist_ok=True)
    for k, v in OLD.items():
        (d / k).write_bytes(v)
    (d / "user.txt").write_bytes(b"mine")


def _owned_state(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.name in OWNED}


def _swap(d: Path) -> None:
    with OutputSet(d, OWNED) as out:
        for k, v in NEW.items():
            out.path(k).write_bytes(v)


class Killed(BaseException):
    """A kill mid-swap: no handler of the code under test runs."""


def _count_replaces(monkeypatch, at: int, exc: BaseException, once: bool = True) -> list[int]:
    real = os.replace
    calls = [0]

    def fake(src, dst, *a, **k):
        calls[0] += 1
        if calls[0] == at or (not once and calls[0] > at):
            raise exc
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", fake)
    return calls


def test_swap_replaces_the_whole_owned_set(tmp_path) -> None:
    d = tmp_path / "o"
    _setup(d)
    _swap(d)
    assert _owned_state(d) == NEW and (d / "user.txt").read_bytes() == b"mine"
    assert _listing(d) == ["a.txt", "b.txt", "c.txt", "user.txt"]  # no staging left


@pytest.mark.parametrize("at", range(1, 9))
def test_failed_rename_rolls_back_to_the_old_set(tmp_path, monkeypatch, at) -> None:
    """The at-th os.replace of the swap fails once (journal writes included): the old set stays."""
    d = tmp_path / "o"
    _setup(d)
    calls = _count_replaces(monkeypatch, at, OSError(5, "Input/output error"))
    try:
        _swap(d)
    except UserError as err:
        assert "earlier outputs are kept" in str(err)
        assert _owned_state(d) == OLD
    else:  # the swap needs fewer renames than ``at``
        assert calls[0] < at and _owned_state(d) == NEW
    assert _listing(d) == sorted(set(_owned_state(d)) | {"user.txt"})


@pytest.mark.parametrize("at", range(1, 9))
def test_kill_between_renames_is_finished_by_the_next_run(tmp_path, monkeypatch, at) -> None:
    """Killed at the at-th rename: after the next run's recovery the folder holds the complete
    old set (killed before the commit) or the complete new set (after it), never a mix."""
    d = tmp_path / "o"
    _setup(d)
    _count_replaces(monkeypatch, at, Killed())
    try:
        _swap(d)
    except Killed:
        pass
    monkeypatch.undo()
    recover(d, OWNED)
    assert _owned_state(d) in (OLD, NEW)
    assert (d / "user.txt").read_bytes() == b"mine"
    assert not [p for p in d.iterdir() if p.name.startswith(".")]


def test_persistent_failure_leaves_a_journal_the_next_run_finishes(tmp_path, monkeypatch) -> None:
    d = tmp_path / "o"
    _setup(d)
    _count_replaces(monkeypatch, 5, OSError(5, "Input/output error"), once=False)  # rollback fails too
    with pytest.raises(UserError, match="next run into this folder completes it"):
        _swap(d)
    monkeypatch.undo()
    assert [p.name for p in d.iterdir() if p.name.startswith(STAGING_PREFIX)]
    recover(d, OWNED)
    assert _owned_state(d) in (OLD, NEW) and not [p for p in d.iterdir() if p.name.startswith(".")]


def test_stale_staging_and_temp_files_are_cleaned(tmp_path) -> None:
    d = tmp_path / "o"
    _setup(d)
    (d / f"{STAGING_PREFIX}dead").mkdir()
    (d / f"{STAGING_PREFIX}dead" / "new").mkdir()
    (d / f"{STAGING_PREFIX}dead" / "new" / "a.txt").write_bytes(b"half")
    (d / ".a.txt.x8y7z6.txt").write_bytes(b"temp")  # atomic_write's temp of an owned name
    (d / ".user.txt.keep").write_bytes(b"not ours")
    with OutputSet(d, OWNED) as out:
        # a live run's staging folder is held: a second set in the same folder leaves it alone
        recover(d, OWNED)
        assert out.staging.exists()
        out.path("a.txt").write_bytes(b"fresh")
    assert _listing(d) == [".user.txt.keep", "a.txt", "user.txt"]
    assert (d / "a.txt").read_bytes() == b"fresh"


def test_viewer_mesh_is_kept_light(motion, tmp_path) -> None:
    from unihand.export.mesh import viewer_mesh
    from unihand.hand.testing import write_random_mano

    cap = viewer_mesh(motion, motion_mesh(motion))
    assert cap.kind == "capsule" and cap.vertices.shape[1] == 14 + 15 * (2 + 2 * 6)  # 6 sides, 1 ring
    mano_dir = write_random_mano(tmp_path / "mano")
    full = motion_mesh(motion, mano_dir=mano_dir)
    assert viewer_mesh(motion, full, mano_dir=mano_dir) is full  # 10 frames: all 778 vertices fit
    light = viewer_mesh(motion, full, mano_dir=mano_dir, budget=N * 6 * 300)
    assert light.kind == "mano" and 150 < light.vertices.shape[1] <= 300
    assert viewer_mesh(motion, full, mano_dir=mano_dir, budget=N * 6 * 50) is None  # skeleton only
