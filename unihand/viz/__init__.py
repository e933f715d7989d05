"""Visualisation: contact sheets (:mod:`.preview`), overlay videos (:mod:`.overlay`),
trajectory plots (:mod:`.trajectory`) and BVH export (:mod:`.bvh`).

Submodules are imported on use (``from unihand.viz.preview import contact_sheet``) so that
importing one does not pull in the others' dependencies.
"""
