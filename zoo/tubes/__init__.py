"""Action tube linking: per-frame detections (rows ``frame, label, score, x1, y1, x2, y2``) to ``Tube`` lists.

- :func:`link_online`: ROAD's online linking and temporal trimming (Singh et al., ICCV 2017), the linking that
  Two-in-One uses on UCF101-24 (untrimmed videos);
- :func:`link_viterbi`: whole-video Viterbi linking (Gkioxari & Malik, CVPR 2015; Saha et al., BMVC 2016) for
  trimmed videos (J-HMDB-21, UCF-Sports);
- :func:`link_videos`: either, over a dict of videos, in worker processes;
- :func:`trim_tube` / :func:`trim_tubes` / :func:`viterbi_labels` (:func:`viterbi_labels_batch` for many paths at
  once): the temporal-labelling dynamic programme.

Linking works on all the classes and paths of a video at once (array operations per frame, not per class and
path); the results are those of the straightforward per-class loops, to the last bit (tested against them).
"""

from zoo.tubes.boxes import ActionPath, box_iou, group_boxes, nms
from zoo.tubes.linking import link_online, link_videos, online_paths
from zoo.tubes.viterbi import (
    TRIM_MODES,
    label_segments,
    link_viterbi,
    trim_tube,
    trim_tubes,
    tube_score,
    viterbi_labels,
    viterbi_labels_batch,
    viterbi_paths,
)

__all__ = [
    "TRIM_MODES",
    "ActionPath",
    "box_iou",
    "group_boxes",
    "label_segments",
    "link_online",
    "link_videos",
    "link_viterbi",
    "nms",
    "online_paths",
    "trim_tube",
    "trim_tubes",
    "tube_score",
    "viterbi_labels",
    "viterbi_labels_batch",
    "viterbi_paths",
]
