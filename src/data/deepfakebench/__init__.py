"""Read and write DeepfakeBench's JSON index of preprocessed frames.

DeepfakeBench (and DF40, ForensicHub) describe a preprocessed dataset with one
JSON file (as distributed; ``docs/datasets.md``)::

    {"<DatasetName>": {"<label_key>": {"train"|"val"|"test": {["c23"|"c40"|"raw":]
        {"<video name>": {"label": "<label_key>", "frames": [...], "masks": [...]}}}}}}

:func:`read_deepfakebench_json` turns one into a dfbench frame table (one row
per frame, columns :data:`src.data.tables.FRAME_COLUMNS`), so data a user has
already prepared with DeepfakeBench can be used as is;
:func:`write_deepfakebench_json` writes a frame table back in that format.

Decisions:

* **Keys** are ``dfb/<DatasetName>/<label_key>[/<comp>]/<video name>``: unique
  across label keys (FF++'s ``000_003`` under FF-DF and FF-F2F stay two videos)
  and compressions, and never equal to a key made by dfbench's own indexers.
* **Labels**: ``label_map`` (label key -> 0/1) is consulted first; any other key
  is real (0) when it contains "real" in any case, else fake (1).
* **Columns**: ``method`` is the label key, ``dataset`` the dfbench name when
  known (``FaceForensics++`` -> ``ffpp`` ...) else DeepfakeBench's, ``path`` the
  folder of the frames, ``crop_path`` the frame (absolute; relative paths are
  resolved against ``data_root`` and are an error without it, since guessing
  the base would give a table of paths that do not exist), ``crop_mask_path``
  its mask or ``""``. Box and score columns are NaN (the format has none).
* **Order**: rows are sorted by video key, then frame number, whatever the
  order of the JSON's keys.
* **Frame numbers**: the file names' numbers when every frame of a video has a
  distinct numeric name (``017.png`` -> 17), else the positions in the list.
* **Landmarks**: DeepfakeBench keeps 81 points beside each frame
  (``.../frames/<v>/017.png`` -> ``.../landmarks/<v>/017.npy``); the first 68
  (the dlib 68-point layout dfbench uses) are kept as a flat float32 array of
  136 values, or None where the file is missing.
* **A video listed under several splits** (DeepfakeBench's own Celeb-DF-v2 JSON
  repeats its test videos under ``val`` and ``train``) is kept once, in the most
  held-out split (test, then val, then train), with a warning: a test video must
  never be trained on or choose a checkpoint.
* **Containment.** With ``data_root``, every frame and mask path (relative or
  absolute) must lie inside it; without, only absolute paths are read. Keys
  built from the JSON's names are checked like any video key (no ``..``).
  An entry whose ``frames``/``masks`` is not a list, or whose frame is not a
  path, is an error naming it.
* **Writing** keeps the frame order, writes ``masks`` only for videos that have
  one, and no landmark files (DeepfakeBench expects 81 points; dfbench keeps 68).
  Rows read by :func:`read_deepfakebench_json` are written back under their
  original dataset, label key, compression and name, so a read-write-read
  round trip returns the same table. Other frame tables are placed under
  DeepfakeBench's names for their dataset and method (``ffpp`` Deepfakes ->
  ``FaceForensics++`` / ``FF-DF``), which ``label_keys`` can override. A video
  of unknown label (-1, a user's own files) cannot be written.
* **Exporting a dfbench cache** (:func:`export_deepfakebench`, the verb
  ``dfbench export-deepfakebench``) writes frame paths relative to the cache;
  reading the file back with the cache as ``data_root`` gives the same frames
  (crop files and frame numbers), labels and splits, one video per video, under
  ``dfb/...`` keys. Tables made with ``keep_all_faces`` come back with their
  frames numbered by position: DeepfakeBench has no notion of several faces
  per frame.
"""

from src.data.deepfakebench.read import (
    DATASET_NAMES,
    FORMAT,
    PREFIX,
    frame_numbers,
    label_of,
    landmark_path,
    load_landmarks,
    read_deepfakebench_json,
)
from src.data.deepfakebench.write import (
    BINARY_LABEL_KEYS,
    DFB_NAMES,
    LABEL_KEYS,
    export_deepfakebench,
    to_deepfakebench,
    write_deepfakebench_json,
)

__all__ = [
    "BINARY_LABEL_KEYS",
    "DATASET_NAMES",
    "DFB_NAMES",
    "FORMAT",
    "LABEL_KEYS",
    "PREFIX",
    "export_deepfakebench",
    "frame_numbers",
    "label_of",
    "landmark_path",
    "load_landmarks",
    "read_deepfakebench_json",
    "to_deepfakebench",
    "write_deepfakebench_json",
]
