"""The tabs of CV Playground, in the order they appear. Each module has ID, TITLE, EXPLANATION and build()."""
from . import (cyclegan, face_deid, instance, keypoint_detectors, landmarks, panoptic, pix2pix, style_transfer,
               super_resolution)

DEMOS = [instance, panoptic, landmarks, keypoint_detectors, super_resolution, pix2pix, cyclegan, style_transfer,
         face_deid]
