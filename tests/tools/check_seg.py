"""Read a DICOM Segmentation written by cxr-review with two independent readers and print
what they found as JSON, for tests/integration/exports.rs to compare with our own masks.

- pydicom: the raw attributes and the unpacked 1-bit frames;
- highdicom: parses the object as a Segmentation IOD (segment descriptions, coded
  properties, per-frame functional groups, source image references) and fails on a
  malformed one.

Usage: python3 check_seg.py FILE.seg.dcm
"""
import json
import sys

import highdicom as hd
import numpy as np
import pydicom

path = sys.argv[1]
ds = pydicom.dcmread(path)
frames = ds.pixel_array
if frames.ndim == 2:
    frames = frames[np.newaxis]

seg = hd.seg.segread(path)
segments = []
for number in seg.segment_numbers:
    desc = seg.get_segment_description(number)
    segments.append({
        "number": int(number),
        "label": desc.segment_label,
        "property": desc.segmented_property_type.value,
        "algorithm": desc.algorithm_type.value,
        "pixels": int(seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[seg.get_source_image_uids()[0][2]],
            segment_numbers=[int(number)],
        ).sum()) if seg.get_source_image_uids() else None,
    })

print(json.dumps({
    "sop_class": ds.SOPClassUID,
    "modality": ds.Modality,
    "segmentation_type": ds.SegmentationType,
    "rows": int(ds.Rows),
    "columns": int(ds.Columns),
    "frames": int(ds.NumberOfFrames),
    "frame_pixels": [int(f.sum()) for f in frames],
    "study": ds.StudyInstanceUID,
    "patient_name": str(ds.get("PatientName", "")),
    "patient_id": str(ds.get("PatientID", "")),
    "source_instances": [uids[2] for uids in seg.get_source_image_uids()],
    "segments": segments,
}))
