"""Hand models (built-in kinematic hand, official MANO), joint orders and anatomical angles."""

from unihand.hand.anatomy import JOINT_LIMITS, angles_to_hand_pose, hand_pose_to_angles, limit_violation
from unihand.hand.kinematic import KinematicHand
from unihand.hand.mano import ManoHand, full_to_pca, pca_to_full
from unihand.hand.model import fk_numpy, load_hand_model
from unihand.hand.output import HandOutput

__all__ = [
    "JOINT_LIMITS",
    "HandOutput",
    "KinematicHand",
    "ManoHand",
    "angles_to_hand_pose",
    "fk_numpy",
    "full_to_pca",
    "hand_pose_to_angles",
    "limit_violation",
    "load_hand_model",
    "pca_to_full",
]
