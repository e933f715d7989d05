"""SyntheticWorld: one deterministic synthetic 4D hand sequence per (seed, index).

How a sequence is made (all in one right-handed "world" whose frame is the first camera's, i.e.
the canonical frame of docs/design.md §2):

1. a camera (:mod:`.camera`): a device's intrinsics, static or head-mounted
   (``T_cano_from_cam`` (N, 4, 4), identity at frame 0; ``SynthConfig.head_motion``: gentle, the
   training default, or realistic);
2. finger angles (:mod:`.motion`) -> ``hand_pose``; a palm-centre path and orientation in each
   frame's camera -> canonical ``global_orient`` / ``transl`` (the head keeps the hand mostly in
   view, as in egocentric video);
3. occluders around the line of sight (:mod:`.scene`);
4. left hands (half of the sequences by default): the whole scene is mirrored (x -> -x in the
   canonical frame: MANO parameters through :func:`unihand.geometry.mirror.mirror_mano`, camera
   poses, objects) and posed with the left hand model, the exact mirror of the right one;
5. forward kinematics for the canonical joints, camera-frame joints per frame, and the
   conditions (:mod:`.conditions`);
6. rendering (:mod:`.render`) only on request, from its own random stream, so a sequence's
   motion and conditions are bitwise the same with and without frames. The background is a
   canvas at infinity (``background="far"``, the default) or a textured room around the camera
   (``"room"``: walls and a table at finite depth, with parallax for camera-motion tests).

Randomness: ``np.random.SeedSequence([seed, index])`` spawns one generator per stage, so a
sequence depends only on (seed, index, config) — never on the order sequences are made in, the
process or the worker. Splits: training uses seed 0; evaluation sets use seeds >= 1000
(:data:`TEST_SEED`), disjoint streams by construction.

Stored with each sequence: the :class:`~unihand.data.io.Motion` (canonical frame; ``joints_2d``
are the clean per-frame projections in pixels) with extras ``T_cano_from_cam`` (N, 4, 4),
``joints_cam`` (N, 21, 3), ``occlusion`` (N,) and the metadata ``seed``, ``index``,
``camera_preset``, ``moving_camera``, ``activity``; the :class:`~unihand.data.io.Conditions`
with extras ``occlusion``, ``joint_occluded``, ``self_occluded``, ``in_image``, ``outlier``
(N, 21), ``frame_missing`` (N,), ``kp2d_gt`` (N, 21, 2), ``T_cano_from_cam`` and the metadata.

``global_orient`` is kept continuous in time: the angle starts in [0, pi] at frame 0 and may
pass pi smoothly instead of jumping to the other axis-angle vector of the same rotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from unihand.data.io import Conditions, Motion
from unihand.data.synthetic.camera import CameraSpec, sample_camera
from unihand.data.synthetic.conditions import ConditionConfig, detector_hand3d, make_conditions
from unihand.data.synthetic.motion import PALM_CENTER_OFFSET, sample_betas, sample_finger_motion, sample_wrist_motion
from unihand.data.synthetic.camera import hand_anchor
from unihand.data.synthetic.render import (BACKGROUNDS, Room, motion_blur_kernels, render_frames, sample_room,
                                           sample_style)
from unihand.data.synthetic.scene import Occluders, project_occluders_batch, sample_occluders
from unihand.geometry.canonical import rigid_inverse
from unihand.geometry.letterbox import Letterbox, letterbox
from unihand.geometry.mirror import mirror_mano
from unihand.geometry.rotations import matrix_to_axis_angle_continuous
from unihand.hand import angles_to_hand_pose, load_hand_model

#: Seed of the training stream; evaluation sets use TEST_SEED + k, disjoint from it.
TRAIN_SEED = 0
TEST_SEED = 1000
#: Third word of the seed of each sequence's detector-3D generator (kept apart from its other draws).
HAND3D_STREAM = 3
_MIRROR = np.diag([-1.0, 1.0, 1.0, 1.0])


@dataclass
class SynthConfig:
    """What a synthetic world generates."""

    frames: int = 48
    fps: float = 30.0
    left_p: float = 0.5  # probability of a left hand
    moving_camera_p: float = 0.5
    exit_p: float = 0.15  # probability that the hand leaves / enters the image
    camera: str | None = None  # force one preset of CAMERA_PRESETS
    fov_deg: float | None = None  # the camera's horizontal field of view, exactly (None: the preset's, jittered)
    activity: str | None = None  # force one activity of motion.ACTIVITIES
    head_motion: str = "gentle"  # moving cameras: camera.HEAD_MOTIONS ("realistic": tens of degrees / s)
    background: str = "far"  # render.BACKGROUNDS: "far" (at infinity) or "room" (3D, with parallax)
    occluder_counts_p: tuple[float, ...] = (0.3, 0.4, 0.2, 0.1)
    conditions: ConditionConfig = field(default_factory=ConditionConfig)
    #: the hand at this fraction of its drawn distance from the camera (same place in the image, larger:
    #: 0.55 makes hand and forearm cover 20-40 % of a 90-degree view)
    hand_near: float = 1.0
    motion_blur: float = 0.0  # exposure (fraction of the frame interval) of the rendered motion blur
    blank_walls: int = 0  # room surfaces painted one flat colour (render.sample_room)


@dataclass
class SyntheticSequence:
    """One generated sequence: GT motion, conditions, camera and scene; frames on demand."""

    seed: int
    index: int
    motion: Motion  # canonical frame; extra: T_cano_from_cam, joints_cam, ...
    conditions: Conditions
    camera: CameraSpec
    occluders: Occluders  # canonical frame
    joints_cam: np.ndarray  # (N, 21, 3) float64, camera frame of each frame
    activity: str
    render_seed: np.random.SeedSequence
    background: str = "far"  # render.BACKGROUNDS
    motion_blur: float = 0.0  # SynthConfig.motion_blur
    blank_walls: int = 0  # SynthConfig.blank_walls

    @property
    def is_right(self) -> bool:
        return self.motion.is_right

    @property
    def num_frames(self) -> int:
        return self.motion.num_frames

    def letterbox(self, size: int = 224) -> Letterbox:
        """Placement of the camera image in the square rendered frames."""
        return letterbox(self.camera.image_size, size)

    def room(self, size: int = 224) -> Room | None:
        """The room :meth:`render` draws at ``size`` (None with the "far" background): drawn from the render
        stream after the style, so "far" scenes render as before rooms existed."""
        if self.background != "room":
            return None
        rng = np.random.default_rng(self.render_seed)
        sample_style(rng, size)
        return sample_room(rng, self.camera.T_cano_from_cam, self.motion.joints, size, self.blank_walls)

    def render(self, size: int = 224, frames: np.ndarray | None = None) -> np.ndarray:
        """(N, size, size, 3) uint8 RGB frames, letterboxed (deterministic for (seed, index, size));
        ``frames``: only these frame indices (same scene and style; sensor noise may differ)."""
        rng = np.random.default_rng(self.render_seed)
        style = sample_style(rng, size)
        room = self.room(size)
        sel = slice(None) if frames is None else frames
        occluders = self.occluders if frames is None else self.occluders.at_frames(frames)
        blur = None
        if self.motion_blur > 0:  # from the whole path: a frame's smear comes from its neighbours' poses
            blur = motion_blur_kernels(self.camera.T_cano_from_cam, self.letterbox(size).frame_K(self.camera.K),
                                       self.motion_blur)
            blur = blur if frames is None else [blur[int(i)] for i in np.arange(self.num_frames)[frames]]
        return render_frames(self.joints_cam[sel], self.camera.K, self.camera.image_size,
                             self.camera.T_cano_from_cam[sel], occluders, style, size, room=room, blur_kernels=blur)


@dataclass
class _Plan:
    """Everything one sequence samples before the batched stages (right-handed world)."""

    index: int
    is_right: bool
    betas: np.ndarray  # (10,)
    camera: CameraSpec
    angles: np.ndarray  # (N, 15, 3) finger angles
    rotation: np.ndarray  # (N, 3, 3) hand orientation, canonical frame
    center: np.ndarray  # (N, 3) palm centre, canonical frame
    occluders: Occluders
    activity: str
    cond_rng: np.random.Generator
    render_seed: np.random.SeedSequence


class SyntheticWorld:
    """Deterministic generator of synthetic sequences: ``world.sequence(index)``.

    ``world.sequences(indices)`` makes several at once (the array stages — rotations, forward
    kinematics, conditions — run batched, several times faster per sequence) with bitwise the
    same result as one by one.

    Args:
        seed: stream id (:data:`TRAIN_SEED` for training, :data:`TEST_SEED` + k for test sets).
        config: what to generate (:class:`SynthConfig`).
        mano_dir: official MANO files to pose the hands with; ``None`` (default) uses the
            built-in kinematic hand.
    """

    def __init__(self, seed: int = TRAIN_SEED, config: SynthConfig | None = None, mano_dir: str | None = None) -> None:
        self.seed = int(seed)
        self.config = config or SynthConfig()
        if self.config.background not in BACKGROUNDS:
            raise ValueError(f"background {self.config.background!r}: choose from {', '.join(BACKGROUNDS)}")
        self.hands = {True: load_hand_model(mano_dir, is_right=True), False: load_hand_model(mano_dir, is_right=False)}

    def sequence(self, index: int) -> SyntheticSequence:
        """The sequence ``index`` of this world (bitwise reproducible)."""
        return self.sequences([index])[0]

    def _plan(self, index: int) -> _Plan:
        cfg = self.config
        ss = np.random.SeedSequence([self.seed, int(index)])
        r_top, r_cam, r_fing, r_wrist, r_occ, r_cond, r_render = ss.spawn(7)
        top = np.random.default_rng(r_top)
        t = np.arange(cfg.frames) / cfg.fps
        is_right = bool(top.random() >= cfg.left_p)
        betas = sample_betas(top)
        cam = sample_camera(np.random.default_rng(r_cam), t, moving_prob=cfg.moving_camera_p, preset=cfg.camera,
                            head=cfg.head_motion, fov_deg=cfg.fov_deg)
        fingers = sample_finger_motion(np.random.default_rng(r_fing), t, cfg.activity)
        wrist = sample_wrist_motion(np.random.default_rng(r_wrist), t, cam.K, cam.image_size, exit_p=cfg.exit_p,
                                    activity=fingers.activity.split(":")[0], episode=fingers.episode)
        # the hand's path is drawn in a frame that turns with (part of) the head and shares (part of) its travel
        R, travel = hand_anchor(cam, cfg.fps)
        rotation = R @ wrist.rotation
        center = (R @ (cfg.hand_near * wrist.center)[:, :, None])[:, :, 0] + travel
        occluders = sample_occluders(np.random.default_rng(r_occ), t, center, cam.T_cano_from_cam,
                                     counts_p=cfg.occluder_counts_p)
        return _Plan(int(index), is_right, betas, cam, fingers.angles, rotation, center, occluders, fingers.activity,
                     np.random.default_rng(r_cond), r_render)

    def sequences(self, indices: list[int] | np.ndarray) -> list[SyntheticSequence]:
        """The sequences ``indices`` of this world; each is the same as ``sequence(i)``."""
        plans = [self._plan(int(i)) for i in indices]
        cfg = self.config
        b, n = len(plans), cfg.frames
        right = np.array([p.is_right for p in plans])
        betas = np.repeat(np.stack([p.betas for p in plans])[:, None], n, axis=1)  # (B, N, 10)
        rotation = np.stack([p.rotation for p in plans])
        root = self.hands[True].rest_root(torch.from_numpy(betas)).numpy()
        transl = np.stack([p.center for p in plans]) - (rotation @ PALM_CENTER_OFFSET) - root
        global_orient = matrix_to_axis_angle_continuous(rotation)
        hand_pose = angles_to_hand_pose(np.stack([p.angles for p in plans]))
        T = np.stack([p.camera.T_cano_from_cam for p in plans])
        left = ~right
        if left.any():  # mirror the whole right-handed scene (x -> -x in the canonical frame)
            global_orient[left], hand_pose[left], _, transl[left] = mirror_mano(
                global_orient[left], hand_pose[left], betas[left], transl[left])
            T[left] = _MIRROR @ T[left] @ _MIRROR
        occs = [p.occluders if p.is_right else p.occluders.mirrored() for p in plans]
        joints = np.empty((b, n, 21, 3))
        with torch.no_grad():
            for side in (True, False):
                sel = right == side
                if sel.any():
                    out = self.hands[side](
                        global_orient=torch.from_numpy(global_orient[sel]), hand_pose=torch.from_numpy(hand_pose[sel]),
                        betas=torch.from_numpy(betas[sel]), transl=torch.from_numpy(transl[sel]),
                    )
                    joints[sel] = out.joints.numpy()
        T_cam = rigid_inverse(T)
        joints_cam = (T_cam[:, :, None, :3, :3] @ joints[..., None])[..., 0] + T_cam[:, :, None, :3, 3]
        K = np.stack([p.camera.K for p in plans])
        sizes = np.stack([p.camera.image_size for p in plans])
        occ2d = project_occluders_batch(occs, T_cam, K, joints_cam[..., 2].mean(axis=-1))
        cond = make_conditions([p.cond_rng for p in plans], joints_cam, joints, K, sizes, occ2d, cfg.conditions)
        mano = np.concatenate([global_orient, hand_pose, betas, transl], axis=-1)
        return [self._assemble(p, k, T[k], mano[k], joints[k], joints_cam[k], occs[k], cond)
                for k, p in enumerate(plans)]

    def _assemble(self, plan: _Plan, k: int, T: np.ndarray, mano: np.ndarray, joints: np.ndarray,
                  joints_cam: np.ndarray, occluders: Occluders, cond: dict[str, np.ndarray]) -> SyntheticSequence:
        cfg = self.config
        f32 = np.float32
        cam = CameraSpec(plan.camera.preset, plan.camera.K, plan.camera.image_size, T, plan.camera.moving,
                         plan.camera.hand_follow, plan.camera.hand_follow_translation)
        K = cam.K.astype(f32)
        size = cam.image_size.astype(np.int64)
        n = cfg.frames
        meta = {
            "seed": np.int64(self.seed), "index": np.int64(plan.index), "camera_preset": np.str_(cam.preset),
            "moving_camera": np.bool_(cam.moving), "activity": np.str_(plan.activity),
        }
        mano32 = mano.astype(f32)
        motion = Motion.from_mano(
            mano32, joints=joints.astype(f32), joints_2d=cond["joints_2d"][k].astype(f32), is_right=plan.is_right,
            fps=cfg.fps, K=K, image_size=size,
            extra={"T_cano_from_cam": T.astype(f32), "joints_cam": joints_cam.astype(f32),
                   "occlusion": cond["occlusion"][k], **meta},
        )
        # its own generator, so every other draw of the sequence is what it was before this field existed
        found = ~cond["frame_missing"][k]
        hand3d = detector_hand3d(np.random.default_rng([self.seed, plan.index, HAND3D_STREAM]), joints_cam, found)
        extra_keys = ("occlusion", "joint_occluded", "self_occluded", "in_image", "outlier", "frame_missing", "kp2d_gt")
        conditions = Conditions(
            kp2d=cond["kp2d"][k], kp2d_mask=cond["kp2d_mask"][k], kp2d_conf=cond["kp2d_conf"][k],
            kp3d=cond["kp3d"][k], kp3d_mask=cond["kp3d_mask"][k], kp3d_hand=hand3d, kp3d_hand_mask=found, mano=mano32, mano_mask=np.ones(n, dtype=bool),
            is_right=plan.is_right, fps=cfg.fps, K=K, image_size=size,
            extra={**{key: cond[key][k] for key in extra_keys}, "T_cano_from_cam": T.astype(f32), **meta},
        )
        return SyntheticSequence(
            seed=self.seed, index=plan.index, motion=motion, conditions=conditions, camera=cam, occluders=occluders,
            joints_cam=joints_cam, activity=plan.activity, render_seed=plan.render_seed, background=cfg.background,
            motion_blur=cfg.motion_blur, blank_walls=cfg.blank_walls,
        )
