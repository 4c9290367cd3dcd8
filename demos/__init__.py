"""The tabs of CV Playground, in the order they appear. Each module has ID, TITLE, EXPLANATION and build()."""
from . import cyclegan, face_deid, instance, landmarks, panoptic, pix2pix, style_transfer, super_resolution

DEMOS = [instance, panoptic, landmarks, super_resolution, pix2pix, cyclegan, style_transfer, face_deid]
