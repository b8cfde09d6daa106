import numpy as np
import pytest

from posekit import skeletons
from posekit.errors import DataError


def test_coco_flip_pairs_from_names_match_official():
    assert list(skeletons.COCO17.flip_pairs) == [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]


def test_mpii_flip_pairs_from_names_match_official():
    assert sorted(skeletons.MPII16.flip_pairs) == [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)]


def test_flip_index_is_an_involution():
    for name in skeletons.names():
        idx = skeletons.get(name).flip_index
        assert np.array_equal(idx[idx], np.arange(len(idx)))


def test_custom_category_gives_22_keypoint_skeleton():
    names = [f"left_p{i}" for i in range(11)] + [f"right_p{i}" for i in range(11)]
    cat = {"name": "thing", "keypoints": names, "skeleton": [[1, 2], [12, 13]]}
    sk = skeletons.from_coco_category(cat)
    assert sk.num_keypoints == 22
    assert sk.links == ((0, 1), (11, 12))
    assert len(sk.flip_pairs) == 11 and (0, 11) in sk.flip_pairs


def test_coco_category_resolves_to_builtin():
    cat = {"keypoints": list(skeletons.COCO17.keypoints), "skeleton": []}
    assert skeletons.from_coco_category(cat) is skeletons.COCO17


def test_bad_link_names_the_source():
    with pytest.raises(DataError, match="ann.json"):
        skeletons.from_coco_category({"keypoints": ["a", "b"], "skeleton": [[1, 3]]}, source="ann.json")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["Nose", "Nearknee", "Offknee", "Hip"], [(1, 2)]),  # Horse-10 near/off side
        (["head", "eyeL", "forelegR1", "eyeR", "forelegL1"], [(1, 3), (2, 4)]),  # fly / locust / zebra L/R suffix
        (["LeftHand", "RightHand", "Head"], [(0, 1)]),  # camel-case prefix
        (["left_eye", "right_eye", "neck"], [(0, 1)]),
        (["lower", "roof", "Lid"], []),  # words that merely start/end with l/r are not sides
    ],
)
def test_flip_pairs_from_side_markers(names, expected):
    assert skeletons.flip_pairs_from_names(names) == expected
