"""MANO loader: agreement with smplx, the restricted unpickler, left-hand fix, PCA conversions."""

import os
import pickle
import sys
import types

import numpy as np
import pytest
import roma
import scipy.sparse
import smplx
import torch

from unihand.errors import UserError
from unihand.hand import ManoHand, fk_numpy, full_to_pca, load_hand_model, pca_to_full
from unihand.hand.joints import FINGERTIP_VERTEX_IDS, MANO_TO_OPENPOSE
from unihand.hand.mano import load_mano_arrays, load_mano_pickle, mano_file
from unihand.hand.testing import random_mano_arrays, write_random_mano


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory):
    return write_random_mano(tmp_path_factory.mktemp("mano"), seed=3)


def params(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        global_orient=torch.randn(n, 3, generator=g, dtype=torch.float64),
        hand_pose=0.7 * torch.randn(n, 45, generator=g, dtype=torch.float64),
        betas=torch.randn(n, 10, generator=g, dtype=torch.float64),
        transl=0.2 * torch.randn(n, 3, generator=g, dtype=torch.float64),
    )


@pytest.mark.parametrize("is_right", [True, False])
def test_agrees_with_smplx(mano_dir, is_right):
    p = params(6)
    ref = smplx.MANO(model_path=str(mano_dir), is_rhand=is_right, use_pca=False, flat_hand_mean=True,
                     dtype=torch.float64, batch_size=6)
    if not is_right:  # smplx loads the file as is; apply the same left-hand fix
        with torch.no_grad():
            ref.shapedirs[:, 0, :] *= -1
    expected = ref(**p)
    ours = load_hand_model(mano_dir, is_right=is_right)
    out = ours(**p)
    assert ours.kind == "mano" and ours.faces.shape == (1538, 3)
    assert out.vertices.shape == (6, 778, 3) and out.joints.shape == (6, 21, 3)
    assert (out.vertices - expected.vertices).abs().max() < 1e-6
    assert (out.joints16 - expected.joints).abs().max() < 1e-6
    tips = expected.vertices[:, list(FINGERTIP_VERTEX_IDS)]
    ref21 = torch.cat([expected.joints, tips], 1)[:, list(MANO_TO_OPENPOSE)]
    assert (out.joints - ref21).abs().max() < 1e-6


def test_left_shapedirs_sign_fix(mano_dir):
    path = mano_dir / "MANO_RIGHT.pkl"
    right, left = load_mano_arrays(path, is_right=True), load_mano_arrays(path, is_right=False)
    np.testing.assert_array_equal(left["shapedirs"][:, 0], -right["shapedirs"][:, 0])
    np.testing.assert_array_equal(left["shapedirs"][:, 1:], right["shapedirs"][:, 1:])


def test_rest_root_and_rigid_transform(mano_dir):
    hand = ManoHand.from_dir(mano_dir)
    p = params(4, seed=1)
    arrays = load_mano_arrays(mano_dir / "MANO_RIGHT.pkl")
    v = arrays["v_template"] + np.einsum("nl,vcl->nvc", p["betas"].numpy(), arrays["shapedirs"])
    np.testing.assert_allclose(hand.rest_root(p["betas"]).numpy(), (arrays["J_regressor"] @ v)[:, 0], atol=1e-12)
    rot_a = roma.rotvec_to_rotmat(torch.tensor([-0.4, 0.9, 2.0], dtype=torch.float64))
    shift = torch.tensor([0.3, 0.1, -0.2], dtype=torch.float64)
    root = hand.rest_root(p["betas"])
    moved = dict(p, global_orient=roma.rotmat_to_rotvec(rot_a @ roma.rotvec_to_rotmat(p["global_orient"])),
                 transl=(root + p["transl"]) @ rot_a.T + shift - root)
    a, b = hand(**moved), hand(**p)
    assert torch.allclose(a.vertices, b.vertices @ rot_a.T + shift, atol=1e-12)


def test_fk_numpy_with_vertices(mano_dir):
    hand = ManoHand.from_dir(mano_dir)
    p = params(5)
    mano = torch.cat([p["global_orient"], p["hand_pose"], p["betas"], p["transl"]], -1).numpy()
    joints, vertices = fk_numpy(hand, mano, chunk=2)
    out = hand(**p)
    assert joints.dtype == np.float64
    np.testing.assert_allclose(joints, out.joints.numpy(), atol=1e-12)
    np.testing.assert_allclose(vertices, out.vertices.numpy(), atol=1e-12)


def test_missing_file_says_where_and_how(tmp_path):
    with pytest.raises(UserError) as err:
        load_hand_model(tmp_path / "nowhere")
    msg = str(err.value)
    assert str((tmp_path / "nowhere" / "MANO_RIGHT.pkl").resolve()) in msg
    assert "https://mano.is.tue.mpg.de" in msg and "--mano-dir" in msg and "\n" not in msg
    with pytest.raises(UserError, match="MANO_LEFT.pkl"):
        mano_file(tmp_path, is_right=False)


class FakeCh:
    """Pickled under the name chumpy.ch.Ch, with chumpy's state layout (a dict holding 'x')."""

    def __init__(self, x):  # the state chumpy's Ch.__getstate__ returns for a plain array
        self.x = x
        self._dirty_vars = {"x"}
        self._itr = None
        self._make_dense = self._make_sparse = False
        self._depends_on_deps = {}


@pytest.fixture
def fake_chumpy(monkeypatch):
    module = types.ModuleType("chumpy.ch")
    FakeCh.__module__, FakeCh.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = FakeCh
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", module)
    yield
    FakeCh.__module__, FakeCh.__qualname__ = __name__, "FakeCh"


@pytest.mark.parametrize("protocol", [0, 2])  # 0/1: copyreg._reconstructor; 2: NEWOBJ
def test_chumpy_arrays_become_numpy(tmp_path, fake_chumpy, protocol):
    arrays = random_mano_arrays(seed=5)
    data = dict(arrays, v_template=FakeCh(arrays["v_template"]), shapedirs=FakeCh(arrays["shapedirs"]))
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    sys.modules.pop("chumpy.ch")  # loading must not need chumpy
    loaded = load_mano_pickle(path)
    assert isinstance(loaded["v_template"], np.ndarray) and isinstance(loaded["shapedirs"], np.ndarray)
    np.testing.assert_array_equal(loaded["shapedirs"], arrays["shapedirs"])
    assert scipy.sparse.issparse(loaded["J_regressor"]) and loaded["J_regressor"].format == "csc"
    np.testing.assert_array_equal(loaded["J_regressor"].toarray(), arrays["J_regressor"].toarray())
    assert loaded["bs_style"] == "lbs"
    ManoHand.from_dir(tmp_path)


class Malicious:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_other_classes_are_refused_without_running(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(dict(random_mano_arrays(), evil=Malicious(marker)), protocol=protocol))
    with pytest.raises(UserError, match=r"MANO_RIGHT.pkl: refusing to load class (posix|os|nt)\.system"):
        load_hand_model(tmp_path)
    assert not marker.exists()


def test_bad_shapes_and_junk_are_user_errors(tmp_path):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(dict(random_mano_arrays(), weights=np.ones((778, 15))), protocol=2))
    with pytest.raises(UserError, match=r"'weights' has shape \(778, 15\)"):
        load_hand_model(tmp_path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match="not a readable MANO pickle"):
        load_hand_model(tmp_path)


def test_pca_conversions_against_hand_computation():
    arrays = random_mano_arrays(seed=7)
    comps, mean = torch.from_numpy(arrays["hands_components"]), torch.from_numpy(arrays["hands_mean"])
    coeffs = torch.randn(4, 15, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = coeffs.numpy() @ arrays["hands_components"][:15] + arrays["hands_mean"]
    np.testing.assert_allclose(pca_to_full(coeffs, comps, mean).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(pca_to_full(coeffs, comps, mean, flat_hand_mean=True).numpy(),
                               expected - arrays["hands_mean"], atol=1e-12)
    assert torch.allclose(full_to_pca(pca_to_full(coeffs, comps, mean), comps, mean, 15), coeffs, atol=1e-10)
    full = torch.randn(3, 45, dtype=torch.float64)
    assert torch.allclose(pca_to_full(full_to_pca(full, comps, mean, 45), comps, mean), full, atol=1e-10)
