"""Small, deterministic copies of every dataset's official on-disk layout, with real videos.

``synthesize(out_dir)`` writes miniature FaceForensics++ (with DFD inside it),
Celeb-DF-v2, DFDC, DFDC-Preview, WildDeepfake and DeeperForensics-1.0 trees
that follow each dataset's published layout file for file: the same folder names,
file-name patterns, split and label files (with each dataset's own label
convention), mp4 videos (OpenCV ``mp4v``) and, for WildDeepfake, ``.tar.gz``
archives of cropped PNG face sequences. Indexers, preprocessing and the
cross-dataset benchmark can therefore run end to end on them.

Faces are photographic: identities are warped, recoloured variants of
``skimage.data.astronaut()`` (see :mod:`src.synthetic.faces`). facenet-pytorch's
MTCNN finds the face in nearly every frame (the preprocessing of the default set
kept 1307 of 1308 frames, losing one FaceSwap frame; the tiny set: all 354 frames
with p > 0.8), whereas it found procedurally drawn
cartoon faces in only 46 of 120 frames. Videos move the
head (translation, roll and scale drift plus sway) and the mouth (talking).
Real videos are untouched renders of one identity; a fake keeps the target
video's frames and pastes a face region through a soft mask. FF++ and DFD
mask videos are that blend mask, white on black.

What every fake shares is what blending leaves: a face generated at low
resolution (14-32 px from jaw to jaw, against about 110 px in the frame) pasted
through a mask whose edge shows, with its brightness a little off the target's
(``tone``, 5-10 %). That seam is visible on a 64 px face crop, so a detector
trained from scratch on two CPU epochs learns it (the demo benchmark). Each
dataset's fakes add their own recognisable style (:data:`STYLES`), so training on
one and testing on another is a real generalisation test:

- FF++ (all at 16 px, FaceShifter 20): Deepfakes: inner face, half colour transfer,
  flicker. Face2Face: reenactment of the lower face, strong colour transfer.
  FaceSwap: hard-edged inner face, no colour transfer, jittery alignment.
  NeuralTextures: mouth only, textured rendering noise. FaceShifter: whole face,
  near-perfect colour, very soft edge.
- DFD: whole face, soft edge, 20 px. CDF2: enlarged inner face, very soft edge,
  near-perfect colour, 28 px and a fainter tone. DFDC: three styles rotated over
  its fakes (18-26 px), and the whole dataset is JPEG-compressed and noisy. DFDC-P:
  method A soft but colour-mismatched, method B hard-edged at 14 px.
  WildDeepfake: JPEG-damaged source, and everything blurred and compressed.
  DF-1.0 end_to_end: whole face, near-perfect colour, 32 px and the faintest tone
  (the hardest); a perturbed sibling folder adds distortions.

Everything is a pure function of ``(seed, dataset, video)``: the same seed gives
byte-identical files (OpenCV's bundled FFmpeg encodes deterministically), and
synthesising one dataset alone gives the same files as synthesising all.
Every file is written atomically; a marker file written last per dataset
makes re-running over a complete tree a no-op.

Decisions where the datasets' documentation is silent: DFDC videos are 320x240 (landscape,
to exercise non-square handling), all others 256x256; FF++ and DFD share the
``FaceForensics++`` root and have one marker each; DF-1.0 fakes are built on
the synthetic FF++ youtube videos of the matching split (as the real DF-1.0
is built on FF++), named ``<ffpp id>_<actor>.mp4``, and its split lists name
those files; WildDeepfake archives unpack to ``<id>/<real|fake>/<sequence>/<n>.png``
with unpadded frame numbers; DFDC-Preview's ``dataset.json`` also records
``target_id``; Celeb-DF's test list holds each celebrity's last clip (real
and fake) and the second half of YouTube-real.
"""

from __future__ import annotations

import json
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from src.errors import DFBenchError
from src.files import atomic_write_json
from src.synthetic.swaps import Look, SwapStyle, face_crop
from src.synthetic.writer import (
    ALL,
    SIZE_PRESETS,
    SIZES,
    TreeWriter,
    VideoRecipe,
    marker_path,
    read_marker,
    tar_gz,
)

#: Root folder of each dataset under ``out_dir`` (DFD lives inside the FF++ tree).
ROOTS: dict[str, str] = {
    "ffpp": "FaceForensics++",
    "dfd": "FaceForensics++",
    "cdf2": "Celeb-DF-v2",
    "dfdc": "DFDC",
    "dfdcp": "DFDCP",
    "dfw": "deepfake_in_the_wild",
    "df1": "DeeperForensics-1.0",
}
FFPP_METHODS: tuple[str, ...] = (
    "Deepfakes",
    "Face2Face",
    "FaceSwap",
    "NeuralTextures",
    "FaceShifter",
)
FFPP_MASKED: tuple[str, ...] = FFPP_METHODS[:4]
#: Bump when the generator changes, so markers of older trees no longer match.
VERSION = 4

STYLES: dict[str, SwapStyle] = {
    "Deepfakes": SwapStyle(
        region="inner", mask_blur=0.1, colour_match=0.5, source_res=16, flicker=0.03, tone=0.1
    ),
    "Face2Face": SwapStyle(
        region="lower", mask_blur=0.1, colour_match=0.7, source_res=16, reenact=True, tone=0.1
    ),
    "FaceSwap": SwapStyle(
        region="inner", mask_blur=0.015, colour_match=0.0, misalign=2.0, source_res=16, tone=0.1
    ),
    "NeuralTextures": SwapStyle(
        region="mouth", mask_scale=1.5, mask_blur=0.1, colour_match=0.8, source_res=16,
        texture_noise=8.0, reenact=True, tone=0.1,
    ),
    "FaceShifter": SwapStyle(
        region="full", mask_blur=0.12, colour_match=0.75, source_res=20, source_blur=0.004,
        tone=0.1,
    ),
    "dfd": SwapStyle(
        region="full", mask_blur=0.1, colour_match=0.7, source_res=20, flicker=0.02, tone=0.1
    ),
    "cdf2": SwapStyle(
        region="inner", mask_scale=1.12, mask_blur=0.22, colour_match=0.85, source_res=28,
        source_blur=0.004, flicker=0.01, tone=0.06,
    ),
    "dfdc/0": SwapStyle(
        region="inner", mask_blur=0.08, colour_match=0.3, source_res=18, tone=0.1
    ),
    "dfdc/1": SwapStyle(
        region="full", mask_blur=0.12, colour_match=0.8, source_res=26, flicker=0.04, tone=0.08
    ),
    "dfdc/2": SwapStyle(
        region="lower", mask_blur=0.03, colour_match=0.0, misalign=1.0, source_res=22, tone=0.1
    ),
    "method_A": SwapStyle(
        region="full", mask_blur=0.1, colour_match=0.2, source_res=20, tone=0.1
    ),
    "method_B": SwapStyle(
        region="inner", mask_blur=0.03, colour_match=0.6, source_res=14, tone=0.1
    ),
    "dfw": SwapStyle(
        region="inner", mask_blur=0.12, colour_match=0.6, source_res=20, source_jpeg=45, tone=0.1
    ),
    "df1": SwapStyle(
        region="full", mask_scale=0.95, mask_blur=0.12, colour_match=0.85, source_res=32,
        tone=0.05,
    ),
}  # fmt: skip

#: Capture/upload processing every frame of a dataset gets, real or fake.
LOOKS: dict[str, Look] = {
    "ffpp": Look(),
    "dfd": Look(saturation=0.85, blur=0.5),
    "cdf2": Look(jpeg=90),
    "dfdc": Look(jpeg=70, noise=2.0),
    "dfdcp": Look(jpeg=80),
    "dfw": Look(jpeg=55, blur=0.8),
    "df1": Look(),
}
DFD_SCENES: tuple[str, ...] = (
    "exit_phone_room",
    "meeting_serious",
    "kitchen_pan",
    "podium_speech_happy",
    "talking_against_wall",
    "walking_outside_cafe_disgusted",
)


# -- FaceForensics++ -------------------------------------------------------------------------


def ffpp_pairs(seed: int, size: str) -> dict[str, list[list[str]]]:
    """The synthetic FF++ split: ``{"train"|"val"|"test": [[a, b], ...]}`` of 3-digit ids."""
    counts = SIZE_PRESETS[size].ffpp_pairs
    rng = np.random.default_rng([seed, zlib.crc32(b"ffpp/split")])
    ids = [f"{i:03d}" for i in rng.choice(1000, size=2 * sum(counts), replace=False)]
    pairs = [[ids[2 * k], ids[2 * k + 1]] for k in range(sum(counts))]
    train, val = counts[0], counts[0] + counts[1]
    return {"train": pairs[:train], "val": pairs[train:val], "test": pairs[val:]}


def _ffpp_video(builder: TreeWriter, vid: str) -> VideoRecipe:
    return builder.video("ffpp", vid, "youtube")


def _build_ffpp(b: TreeWriter) -> None:
    n = b.size.frames["ffpp"]
    splits = ffpp_pairs(b.seed, b.size_name)
    look = LOOKS["ffpp"]
    for split, pairs in splits.items():
        # Compact, one line, as the official split files are.
        b.write_text(f"{split}.json", json.dumps(pairs))
    for pairs in splits.values():
        for pair in pairs:
            for vid in pair:
                video = _ffpp_video(b, vid)
                frames = b.looked(video.key, b.real(video, n)[0], look)
                b.write_video(f"original_sequences/youtube/c23/videos/{vid}.mp4", frames)
            for target_id, source_id in (pair, pair[::-1]):
                target, source = _ffpp_video(b, target_id), _ffpp_video(b, source_id)
                for method in FFPP_METHODS:
                    name = f"{target_id}_{source_id}"
                    key = f"ffpp/{method}/{name}"
                    fakes, masks, _ = b.fake(key, target, source, STYLES[method], n)
                    base = f"manipulated_sequences/{method}"
                    b.write_video(f"{base}/c23/videos/{name}.mp4", b.looked(key, fakes, look))
                    if method in FFPP_MASKED:
                        b.write_mask(f"{base}/masks/videos/{name}.mp4", masks)


def _build_dfd(b: TreeWriter) -> None:
    n = b.size.frames["dfd"]
    actors = [f"{i + 1:02d}" for i in range(b.size.dfd_actors)]
    scene_rng = b.rng("dfd/scenes")
    scenes = {a: str(scene_rng.choice(DFD_SCENES)) for a in actors}
    videos = {a: b.video("dfd", a, scenes[a]) for a in actors}
    look = LOOKS["dfd"]
    for actor in actors:
        frames = b.looked(videos[actor].key, b.real(videos[actor], n)[0], look)
        b.write_video(f"original_sequences/actors/c23/videos/{actor}__{scenes[actor]}.mp4", frames)
    # Ordered (target, source) pairs, nearest neighbours first, so every actor is a target.
    pairs = [
        (actors[i], actors[(i + step) % len(actors)])
        for step in range(1, len(actors))
        for i in range(len(actors))
    ][: b.size.dfd_fakes]
    code_rng = b.rng("dfd/codes")
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    for target, source in pairs:
        code = "".join(code_rng.choice(alphabet, 8))
        name = f"{target}_{source}__{scenes[target]}__{code}"
        key = f"dfd/{name}"
        fakes, masks, _ = b.fake(key, videos[target], videos[source], STYLES["dfd"], n)
        base = "manipulated_sequences/DeepFakeDetection"
        b.write_video(f"{base}/c23/videos/{name}.mp4", b.looked(key, fakes, look))
        b.write_mask(f"{base}/masks/videos/{name}.mp4", masks)


# -- Celeb-DF-v2 -----------------------------------------------------------------------------


def _build_cdf2(b: TreeWriter) -> None:
    size, n, look = b.size, b.size.frames["cdf2"], LOOKS["cdf2"]
    celebs = [f"id{i}" for i in range(size.cdf2_celebs)]
    listed: list[tuple[int, str]] = []  # (CDF label: 1 = real, 0 = fake, path)
    for i, celeb in enumerate(celebs):
        for clip in range(size.cdf2_clips):
            video = b.video("cdf2", celeb, f"{clip:04d}")
            path = f"Celeb-real/{celeb}_{clip:04d}.mp4"
            b.write_video(path, b.looked(video.key, b.real(video, n)[0], look))
            other = celebs[(i + 1 + clip) % len(celebs)]
            if other == celeb:
                other = celebs[(i + 1) % len(celebs)]
            source = b.video("cdf2", other, f"{clip:04d}")
            name = f"{celeb}_{other}_{clip:04d}"
            fakes, _, _ = b.fake(f"cdf2/{name}", video, source, STYLES["cdf2"], n)
            fake_path = f"Celeb-synthesis/{name}.mp4"
            b.write_video(fake_path, b.looked(f"cdf2/{name}", fakes, look))
            if clip == size.cdf2_clips - 1:
                listed += [(1, path), (0, fake_path)]
    for k in range(size.cdf2_youtube):
        video = b.video("cdf2-youtube", f"{k:05d}", "0")
        path = f"YouTube-real/{k:05d}.mp4"
        b.write_video(path, b.looked(video.key, b.real(video, n)[0], look))
        if k >= size.cdf2_youtube // 2:
            listed.append((1, path))
    lines = [f"{label} {path}" for label, path in sorted(listed, key=lambda item: item[1])]
    b.write_text("List_of_testing_videos.txt", "\n".join(lines) + "\n")


# -- DFDC and DFDC-Preview -------------------------------------------------------------------


def _dfdc_name(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        name = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 10)) + ".mp4"
        if name not in taken:
            taken.add(name)
            return name


def _build_dfdc(b: TreeWriter) -> None:
    n, look = b.size.frames["dfdc"], LOOKS["dfdc"]
    names_rng, taken = b.rng("dfdc/names"), set()
    fake_count = 0
    for part, count in (("test", b.size.dfdc_test), ("dfdc_train_part_0", b.size.dfdc_train)):
        n_real = max(count // 2, 1)
        reals = [b.video("dfdc", f"{part}-{k}", "0", height=240, width=320) for k in range(n_real)]
        labels: dict[str, tuple[int, str | None]] = {}
        real_names = []
        for video in reals:
            name = _dfdc_name(names_rng, taken)
            real_names.append(name)
            b.write_video(f"{part}/{name}", b.looked(video.key, b.real(video, n)[0], look))
            labels[name] = (0, None)
        for k in range(count - n_real):
            target = k % n_real
            source = (
                reals[(target + 1) % n_real]
                if n_real > 1
                else b.video("dfdc", f"{part}-source", "0", height=240, width=320)
            )
            style = STYLES[f"dfdc/{fake_count % 3}"]
            fake_count += 1
            name = _dfdc_name(names_rng, taken)
            fakes, _, _ = b.fake(f"dfdc/{part}/{name}", reals[target], source, style, n)
            b.write_video(f"{part}/{name}", b.looked(f"dfdc/{part}/{name}", fakes, look))
            labels[name] = (1, real_names[target])
        if part == "test":
            rows = "".join(f"{name},{labels[name][0]}\n" for name in sorted(labels))
            b.write_text("test/labels.csv", "filename,label\n" + rows)
        else:
            metadata = {
                name: {
                    "label": "FAKE" if label else "REAL",
                    "split": "train",
                    "original": original,
                }
                for name, (label, original) in sorted(labels.items())
            }
            b.write_json(f"{part}/metadata.json", metadata)


def _build_dfdcp(b: TreeWriter) -> None:
    size, n, look = b.size, b.size.frames["dfdcp"], LOOKS["dfdcp"]
    id_rng = b.rng("dfdcp/ids")
    people = [str(v) for v in id_rng.choice(np.arange(100000, 1000000), size.dfdcp_people, False)]
    n_train = (len(people) + 1) // 2
    sets = {pid: "train" if i < n_train else "test" for i, pid in enumerate(people)}
    index: dict[str, dict[str, str]] = {}
    reals: list[tuple[str, str, VideoRecipe]] = []  # (person, clip, video), people interleaved
    for clip in "ABCDEFGH"[: size.dfdcp_clips]:
        for pid in people:
            video = b.video("dfdcp", pid, clip)
            path = f"original_videos/{pid}/{pid}_{clip}.mp4"
            b.write_video(path, b.looked(video.key, b.real(video, n)[0], look))
            index[path] = {"label": "real", "set": sets[pid], "target_id": pid}
            reals.append((pid, clip, video))
    for m, method in enumerate(("method_A", "method_B")):
        for k in range(size.dfdcp_fakes):
            pid, clip, target = reals[(k + m) % len(reals)]
            source_pid = people[(people.index(pid) + 1) % len(people)]
            source = b.video("dfdcp", source_pid, "A")
            path = f"{method}/{pid}/{pid}_{clip}/{source_pid}_{k}.mp4"
            fakes, _, _ = b.fake(f"dfdcp/{path}", target, source, STYLES[method], n)
            b.write_video(path, b.looked(f"dfdcp/{path}", fakes, look))
            index[path] = {"label": "fake", "set": sets[pid], "target_id": pid}
    b.write_json("dataset.json", index)


# -- WildDeepfake ----------------------------------------------------------------------------


def _build_dfw(b: TreeWriter) -> None:
    size, n, look = b.size, b.size.frames["dfw"], LOOKS["dfw"]
    for folder in ("real_train", "fake_train", "real_test", "fake_test"):
        kind, split = folder.split("_")
        for archive in range(size.dfw_archives):
            files: dict[str, bytes] = {}
            for seq in range(size.dfw_sequences):
                pid = f"{split}-{archive}-{seq}"
                video = b.video("dfw", pid, kind)
                key = f"dfw/{folder}/{archive}/{seq}"
                frames, landmarks = b.real(video, n)
                if kind == "fake":
                    source = b.video("dfw", f"{pid}-source", "0")
                    frames, _, landmarks = b.fake(key, video, source, STYLES["dfw"], n)
                frames = b.looked(key, frames, look)
                crop_size = int(b.rng("dfw/crop", key).integers(112, 177))
                for index, (frame, lm) in enumerate(zip(frames, landmarks, strict=True)):
                    crop = cv2.cvtColor(face_crop(frame, lm, crop_size), cv2.COLOR_RGB2BGR)
                    ok, png = cv2.imencode(".png", crop)
                    if not ok:
                        raise RuntimeError(f"PNG encoding failed for {key}")
                    files[f"{archive}/{kind}/{seq}/{index}.png"] = png.tobytes()
            b.write_bytes(f"{folder}/{archive}.tar.gz", tar_gz(files))


# -- DeeperForensics-1.0 ---------------------------------------------------------------------


def _build_df1(b: TreeWriter) -> None:
    size, n = b.size, b.size.frames["df1"]
    actor_rng = b.rng("df1/actors")
    numbers = actor_rng.choice(np.arange(1, 200), size.df1_actors, replace=False)
    actors = [f"{'MW'[i % 2]}{int(num):03d}" for i, num in enumerate(numbers)]
    sources = {}
    for actor in actors:
        video = b.video("df1", actor, "light_uniform_neutral_camera_front")
        sources[actor] = video
        frames = b.looked(video.key, b.real(video, n)[0], LOOKS["df1"])
        b.write_video(
            f"source_videos/{actor}/{actor}_light_uniform_neutral_camera_front.mp4", frames
        )
    ffpp = ffpp_pairs(b.seed, b.size_name)
    k = 0
    for split, count in zip(("train", "val", "test"), size.df1_split, strict=True):
        targets = [vid for pair in ffpp[split] for vid in pair]
        names = []
        for i in range(count):
            target_id, actor = targets[i % len(targets)], actors[k % len(actors)]
            k += 1
            name = f"{target_id}_{actor}.mp4"
            key = f"df1/{name}"
            fakes, _, _ = b.fake(key, _ffpp_video(b, target_id), sources[actor], STYLES["df1"], n)
            b.write_video(
                f"manipulated_videos/end_to_end/{name}", b.looked(key, fakes, LOOKS["df1"])
            )
            if split == "test":
                # The perturbed copy: random distortions at a random level, as DF-1.0's
                # sibling folders of end_to_end hold.
                rng = b.rng("df1/perturb", name)
                look = Look(
                    jpeg=int(rng.integers(30, 70)),
                    blur=float(rng.uniform(0.0, 1.5)),
                    saturation=float(rng.uniform(0.5, 1.4)),
                    noise=float(rng.uniform(0.0, 6.0)),
                )
                perturbed = b.looked(f"{key}/perturbed", fakes, look)
                b.write_video(f"manipulated_videos/end_to_end_random_level/{name}", perturbed)
            names.append(name)
        b.write_text(f"lists/splits/{split}.txt", "".join(f"{name}\n" for name in names))


_BUILDERS = {
    "ffpp": _build_ffpp,
    "dfd": _build_dfd,
    "cdf2": _build_cdf2,
    "dfdc": _build_dfdc,
    "dfdcp": _build_dfdcp,
    "dfw": _build_dfw,
    "df1": _build_df1,
}


def synthesize(
    out_dir: str | Path, datasets: Sequence[str] = ALL, seed: int = 0, size: str = "default"
) -> dict[str, Path]:
    """Write the synthetic datasets under ``out_dir``; return each dataset's root.

    Re-running over a complete tree with the same arguments writes nothing. A tree
    left by other arguments (another seed or size, an older generator) is rewritten,
    and the files of the old run that the new one does not make are deleted.

    Args:
        out_dir: folder that receives one root folder per dataset (see :data:`ROOTS`).
        datasets: names from :data:`ALL`.
        seed: fixes every identity, motion, id and pixel.
        size: ``"default"`` (about 700 videos of 2-3 frames at 256 px, sized for the
            demo benchmark) or
            ``"tiny"`` (a few 6-frame videos per dataset at 128 px, for tests).

    Returns:
        ``{name: root}``; ``ffpp`` and ``dfd`` share the ``FaceForensics++`` root.
    """
    if isinstance(datasets, str):
        datasets = [datasets]
    unknown = sorted(set(datasets) - set(ALL))
    if unknown:
        raise DFBenchError(f"unknown dataset(s) {unknown}; choose from {list(ALL)}")
    if size not in SIZE_PRESETS:
        raise DFBenchError(f"unknown size {size!r}; choose from {list(SIZES)}")
    out_dir = Path(out_dir)
    roots: dict[str, Path] = {}
    for name in dict.fromkeys(datasets):
        root = out_dir / ROOTS[name]
        roots[name] = root
        params = {"dataset": name, "seed": int(seed), "size": size, "version": VERSION}
        old = read_marker(root, name)
        if old is not None and all(old.get(k) == v for k, v in params.items()):
            files = old.get("files", [])
            if all((root / f).is_file() for f in files):
                continue
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="dfbench-synth-") as tmp:
            builder = TreeWriter(name, root, int(seed), size, Path(tmp))
            _BUILDERS[name](builder)
        written = sorted(set(builder.written))
        for stale in sorted(set(old.get("files", []) if old else []) - set(written)):
            # Only files an earlier synthesize() recorded as its own are removed.
            (root / stale).unlink(missing_ok=True)
        atomic_write_json(marker_path(root, name), {**params, "files": written})
    return roots
