"""The tabs of CV Playground, in the order they appear. Each module has ID, TITLE, EXPLANATION and build()."""
from . import face_deid, super_resolution

DEMOS = [super_resolution, face_deid]
