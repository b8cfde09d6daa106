"""Contact sheets of every kind and style, left in out/test-artifacts for a person to look at."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posekit.data.synth import contact_sheet, generate
from posekit.data.synth.preview import OCCLUDED, VISIBLE, write_png


@pytest.mark.parametrize(("kind", "style"), [("human", "A"), ("human", "B"), ("quadruped", "A"), ("quadruped", "B")])
def test_contact_sheet(tmp_path, out_dir, kind, style):
    summary = generate(tmp_path, 16, kind=kind, style=style, seed=0, workers=2)
    sheet = contact_sheet(summary["ann_file"], summary["image_root"], num=16, cols=4)
    assert sheet.shape == (4 * 256, 4 * 256, 3) and sheet.dtype == np.uint8
    plain = contact_sheet(summary["ann_file"], summary["image_root"], num=16, cols=4, annotate=False)
    # the annotated sheet differs from the plain one by the drawn keypoint markers of both kinds
    for color in (VISIBLE, OCCLUDED):
        marked = np.all(sheet == np.array(color, np.uint8), axis=-1) & ~np.all(plain == np.array(color), axis=-1)
        assert marked.sum() > 20
    path = out_dir / f"synth_contact_{kind}_{style}.png"
    write_png(path, sheet)
    back = cv2.imread(str(path))
    assert back is not None and back.shape == sheet.shape
