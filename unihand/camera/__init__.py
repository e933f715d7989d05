"""Camera motion of a video: estimated from the background, read from a poses file, or static.

- :mod:`unihand.camera.engine`: the estimator (OpenCV feature tracking and two-view geometry,
  bundle adjustment by pycolmap), streaming over the frames with the hands masked out;
- :mod:`unihand.camera.focal`: the focal length of a video whose intrinsics are not given, from the
  camera's rotation;
- :mod:`unihand.camera.poses`: poses files (``.npz`` T_cano_from_cam, COLMAP ``images.txt``,
  Aria MPS ``closed_loop_trajectory.csv``) read into ``T_cano_from_cam`` (N, 4, 4);
- :mod:`unihand.camera.stage`: the ``--camera`` choice of ``unihand estimate`` (what runs, what
  the log and the summary say).

Conventions (docs/design.md §2): OpenCV camera axes, ``T_cano_from_cam`` maps a point of frame
i's camera into the first frame's camera (the canonical, world frame of the motion).
"""

from unihand.camera.engine import BackgroundTracker, CameraEstimate, solve_camera

__all__ = ["BackgroundTracker", "CameraEstimate", "solve_camera"]
