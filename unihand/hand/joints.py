"""Joint orders and the kinematic tree shared by every hand model (docs/design.md §2)."""

from __future__ import annotations

NUM_JOINTS = 21
NUM_MANO_JOINTS = 16

#: Width of the flattened MANO vector: global_orient 3 | hand_pose 45 | betas 10 | transl 3.
MANO_DIM = 61
MANO_SLICES = {
    "global_orient": slice(0, 3),
    "hand_pose": slice(3, 48),
    "betas": slice(48, 58),
    "transl": slice(58, 61),
}

#: MANO's internal 16-joint order: wrist, index1-3, middle1-3, little1-3, ring1-3, thumb1-3.
MANO_JOINT_NAMES = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "little1", "little2", "little3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

#: Fingertip vertex ids in the MANO mesh (thumb, index, middle, ring, little), as smplx/HaMeR.
FINGERTIP_VERTEX_IDS = (744, 320, 443, 554, 671)

#: Index map from [16 MANO joints + 5 tips (thumb, index, middle, ring, little)] to OpenPose order.
MANO_TO_OPENPOSE = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)

#: OpenPose / MediaPipe / DexYCB 21-joint order used in all I/O.
OPENPOSE_JOINT_NAMES = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)
#: Parent of each OpenPose joint (the skeleton drawn in every visualisation).
OPENPOSE_PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
#: Finger chains in OpenPose order (thumb, index, middle, ring, little), wrist excluded.
OPENPOSE_FINGERS = tuple(tuple(range(1 + 4 * f, 5 + 4 * f)) for f in range(5))
