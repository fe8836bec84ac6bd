#!/usr/bin/env python3
"""Make the io test fixtures and the pydicom/Pillow reference values the Rust tests compare against.

Run from the repository root with the io venv (see tests/fixtures/dicom/ATTRIBUTION.md):

    python3 -m venv .venv-io
    .venv-io/bin/pip install pydicom numpy pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg \
        pylibjpeg-rle pyjpegls Pillow
    .venv-io/bin/python scripts/make_dicom_fixtures.py

What it writes:

* tests/fixtures/dicom/reference.json: for every DICOM file under ../shared/dicom (when present) and
  every committed fixture, what pydicom decodes *after the modality LUT and before any MONOCHROME1
  inversion* (shape, min, max, mean, values at fixed coordinates), plus photometric interpretation,
  the header window and rescale. Entries are keyed by file name (rsna files as "rsna/<name>").
  Entries of files pydicom cannot decode carry "error" instead of values.
* small derived DICOM fixtures (a cropped RLE re-encode, truncated and garbage files) when the
  shared folder is present; the real-file fixtures are copied unchanged.
* issue-14 fixtures (always, from pydicom's bundled test files): small JPEG-LS and 12-bit JPEG
  Extended files copied unchanged, data sets without File Meta (implicit and explicit VR), a
  3-frame native and a 3-frame JPEG-LS image, and a DICOMDIR over three images (dicomdir/);
  frames_reference.json holds pydicom's values of every frame of the multi-frame files.
* 64x64 JPEG 2000 lossless and lossy films and their uncompressed source (make_j2k_small).
* tests/fixtures/raster/*: a 16-bit grayscale PNG, an RGB PNG, an RGBA PNG, a tiny gray JPEG and
  tiny RGB JPEG, and raster_reference.json with Pillow's "L" values for each.

Everything is deterministic (fixed seeds), so re-running it reproduces the committed files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut

ROOT = Path(__file__).resolve().parent.parent
SHARED = (ROOT / ".." / "shared" / "dicom").resolve()
DICOM_FIX = ROOT / "tests" / "fixtures" / "dicom"
RASTER_FIX = ROOT / "tests" / "fixtures" / "raster"

# Real files committed unchanged (small enough, and each covers a codec or a photometric case).
COPY_FIXTURES = [
    "pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm",
    "cr_chest_pa_mono1_10bit_explicit_le_440.dcm",
    "siim_cr_chest_pa_jpegbaseline_mono2_8bit_1024.dcm",
    "siim_cr_chest_pa_jpegbaseline_FAKE_mono1_header.dcm",
    "wg04_RG3_cr_extremity_mono1_10bit_j2k_lossy_1760.dcm",
    "wg04_RG2_cr_hip_mono2_10bit_jpeg_extended_fixed.dcm",
    "wg04_RG3_cr_extremity_mono1_10bit_jpegls_lossless_1760.dcm",
]


def sample_coords(rows: int, cols: int) -> list[list[int]]:
    """Eight fixed coordinates (row, col): the corners' neighbourhood, centre and quarter points."""
    fr = [(0, 0), (rows - 1, cols - 1), (rows // 2, cols // 2), (rows // 4, cols // 4),
          (rows // 4, (3 * cols) // 4), ((3 * rows) // 4, cols // 4),
          ((3 * rows) // 4, (3 * cols) // 4), (rows // 3, cols // 2)]
    return [[int(r), int(c)] for r, c in fr]


def first_float(ds, keyword):
    v = ds.get(keyword)
    if v is None:
        return None
    try:
        if isinstance(v, pydicom.multival.MultiValue):
            v = v[0]
        return float(v)
    except (TypeError, ValueError, IndexError):
        return None


def reference_for(path: Path) -> dict:
    bare = path.name.startswith("no_meta_")
    ds = pydicom.dcmread(path, force=bare)
    if bare:
        # No File Meta: the transfer syntax is what the data say (pydicom's guess on reading).
        implicit, _little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (pydicom.uid.ImplicitVRLittleEndian if implicit
                                          else pydicom.uid.ExplicitVRLittleEndian)
    entry = {
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "bits_stored": int(ds.BitsStored),
        "pixel_representation": int(ds.get("PixelRepresentation", 0)),
        "window_center": first_float(ds, "WindowCenter"),
        "window_width": first_float(ds, "WindowWidth"),
        "rescale_slope": first_float(ds, "RescaleSlope"),
        "rescale_intercept": first_float(ds, "RescaleIntercept"),
        "modality": ds.get("Modality"),
        "view_position": ds.get("ViewPosition"),
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")) or None,
    }
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - recorded, the Rust side must then error too or decode
        entry["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return entry
    if arr.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) == 1:
        arr = arr[0]  # multi-frame: frame 0, like the viewer
    vals = apply_modality_lut(arr, ds).astype(np.float64)
    rows, cols = vals.shape[:2]
    coords = sample_coords(rows, cols)
    entry.update({
        "shape": [int(rows), int(cols)],
        "min": float(vals.min()),
        "max": float(vals.max()),
        "mean": float(vals.mean()),
        "coords": coords,
        "values": [float(vals[r, c]) for r, c in coords],
        "decoder_note": "pydicom " + pydicom.__version__,
    })
    return entry


def make_derived(shared: Path) -> None:
    """Small fixtures derived from the shared files, so real codecs stay covered in a fresh clone."""
    # RLE: crop the 2140x1760 WG04 hip to 192x160 and re-encode with pydicom's own RLE encoder.
    src = pydicom.dcmread(shared / "wg04_RG2_cr_hip_mono2_10bit_rle_2140x1760.dcm")
    arr = src.pixel_array[900:1092, 700:860].copy()
    src.decompress()
    src.PixelData = arr.astype(np.uint16).tobytes()
    src.Rows, src.Columns = arr.shape
    src.compress(pydicom.uid.RLELossless, encoding_plugin="pydicom")
    # compress() assigns a random SOP Instance UID; a derived, fixed one keeps re-runs identical.
    uid = pydicom.uid.generate_uid(entropy_srcs=["cxr-viewer", "wg04_RG2_rle_crop_192x160"])
    src.SOPInstanceUID = uid
    src.file_meta.MediaStorageSOPInstanceUID = uid
    src.save_as(DICOM_FIX / "wg04_RG2_rle_crop_192x160.dcm", enforce_file_format=True)

    # Truncated inside the pixel data, and inside the header (the header is ~1.5 kB).
    raw = (shared / "cr_chest_pa_mono1_10bit_explicit_le_440.dcm").read_bytes()
    (DICOM_FIX / "truncated_pixeldata.dcm").write_bytes(raw[:8192])
    (DICOM_FIX / "truncated_header.dcm").write_bytes(raw[:400])

    # Garbage with a DICOM extension, and garbage carrying the DICM marker.
    rng = np.random.default_rng(1234)
    garbage = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    (DICOM_FIX / "garbage.dcm").write_bytes(garbage)
    (DICOM_FIX / "garbage_with_dicm.dcm").write_bytes(garbage[:128] + b"DICM" + garbage[132:])

    # A real file with the 128-byte preamble removed (starts with "DICM").
    raw16 = (shared / "pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm").read_bytes()
    (DICOM_FIX / "no_preamble_16x16.dcm").write_bytes(raw16[128:])


# Small files from pydicom's own test set (pydicom/data/test_files, shipped in the wheel), copied
# unchanged: name here -> name there.
PYDICOM_FIXTURES = {
    "pydicom_nm_jpeg_extended_12bit_1024x256.dcm": "JPGExtended.dcm",
    "pydicom_mr_jpegls_lossless_16bit_64.dcm": "MR_small_jpeg_ls_lossless.dcm",
    "pydicom_jpegls_nearlossless_16bit_10x50.dcm": "JPEGLSNearLossless_16.dcm",
}


def make_issue14() -> dict:
    """Fixtures for JPEG-LS, 12-bit JPEG, bare data sets, multi-frame and DICOMDIR."""
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.fileset import FileSet
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless

    for ours, theirs in PYDICOM_FIXTURES.items():
        shutil.copyfile(get_testdata_file(theirs), DICOM_FIX / ours)

    small = DICOM_FIX / "pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm"
    # Bare data sets: no preamble, no "DICM", no File Meta; pydicom reads them with force=True.
    for name, ts, implicit in [("no_meta_implicit_16x16.dcm", ImplicitVRLittleEndian, True),
                               ("no_meta_explicit_16x16.dcm", ExplicitVRLittleEndian, False)]:
        ds = pydicom.dcmread(small)
        ds.file_meta = FileMetaDataset()
        ds.preamble = None
        ds.save_as(DICOM_FIX / name, implicit_vr=implicit, little_endian=True,
                   enforce_file_format=False)
        back = pydicom.dcmread(DICOM_FIX / name, force=True)
        assert "TransferSyntaxUID" not in back.file_meta and back.preamble is None, name
        del ts

    # Three frames of 16x16: frame k is the C-spine film plus 100*k (12 stored bits kept).
    base = pydicom.dcmread(small)
    arr = base.pixel_array.astype(np.uint16)
    frames = np.stack([np.minimum(arr + 100 * k, 4095) for k in range(3)]).astype(np.uint16)
    base.NumberOfFrames = 3
    base.PixelData = frames.tobytes()
    uid = pydicom.uid.generate_uid(entropy_srcs=["cxr-viewer", "multiframe_3x16x16"])
    base.SOPInstanceUID = uid
    base.file_meta.MediaStorageSOPInstanceUID = uid
    base.save_as(DICOM_FIX / "multiframe_3x16x16.dcm", enforce_file_format=True)
    # The same frames in JPEG-LS lossless (one fragment per frame), pyjpegls' encoder.
    jls = pydicom.dcmread(DICOM_FIX / "multiframe_3x16x16.dcm")
    jls.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
    uid = pydicom.uid.generate_uid(entropy_srcs=["cxr-viewer", "multiframe_jpegls_3x16x16"])
    jls.SOPInstanceUID = uid
    jls.file_meta.MediaStorageSOPInstanceUID = uid
    jls.save_as(DICOM_FIX / "multiframe_jpegls_3x16x16.dcm", enforce_file_format=True)

    # A DICOMDIR over three images (the 16x16 film, the 3-frame file, the 12-bit JPEG).
    out = DICOM_FIX / "dicomdir"
    if out.exists():
        shutil.rmtree(out)
    fs = FileSet()
    fs.UID = pydicom.uid.generate_uid(entropy_srcs=["cxr-viewer", "dicomdir"])
    for name in ["pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm", "multiframe_3x16x16.dcm",
                 "pydicom_nm_jpeg_extended_12bit_1024x256.dcm"]:
        fs.add(DICOM_FIX / name)
    fs.write(out)

    refs = {}
    for name in ["multiframe_3x16x16.dcm", "multiframe_jpegls_3x16x16.dcm"]:
        ds = pydicom.dcmread(DICOM_FIX / name)
        vals = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
        refs[name] = {"frames": int(ds.NumberOfFrames),
                      "values": [v.ravel().tolist() for v in vals]}
    return refs


def make_j2k_small() -> None:
    """64x64 JPEG 2000 films (lossless and lossy, OpenJPEG through pylibjpeg-openjpeg): small
    enough to seed the dicom_loader fuzzer (the real J2K fixture is 1760x1760) and to check that
    the lossless one decodes to exactly the pixels it was made from (j2k_source_64x64.dcm)."""
    from pydicom.uid import JPEG2000, JPEG2000Lossless

    def source():
        ds = pydicom.dcmread(DICOM_FIX / "pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm")
        arr = np.kron(ds.pixel_array, np.ones((4, 4), dtype=np.uint16))
        # Detail inside each 4x4 block, so the lossy coder has something to lose.
        arr = arr + ((np.arange(64)[:, None] * 3 + np.arange(64)[None, :]) % 17).astype(np.uint16)
        ds.Rows, ds.Columns = arr.shape
        ds.PixelData = arr.tobytes()
        return ds, arr

    ds, _ = source()
    ds.save_as(DICOM_FIX / "j2k_source_64x64.dcm", enforce_file_format=True)
    for name, ts, kwargs in [("j2k_lossless_64x64.dcm", JPEG2000Lossless, {}),
                             ("j2k_lossy_64x64.dcm", JPEG2000, {"j2k_cr": [10]})]:
        ds, arr = source()
        ds.compress(ts, arr, **kwargs)
        ds.save_as(DICOM_FIX / name, enforce_file_format=True)


def make_raster() -> dict:
    RASTER_FIX.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    ref = {}

    # 16-bit gray PNG: a ramp well above 255 so an 8-bit squash would show.
    h, w = 24, 32
    g16 = (np.arange(h * w, dtype=np.uint32).reshape(h, w) * 83 + 1000).astype(np.uint16)
    g16[0, 0] = 0
    g16[-1, -1] = 65535
    Image.fromarray(g16).save(RASTER_FIX / "gray16.png")
    back = np.array(Image.open(RASTER_FIX / "gray16.png"))
    assert back.dtype == np.uint16 or back.max() > 255, back.dtype
    ref["gray16.png"] = {"width": w, "height": h, "bit_depth": 16,
                         "values": back.astype(np.int64).ravel().tolist()}

    # RGB and RGBA PNG: random colours; reference is Pillow's "L" conversion (what training used).
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(RASTER_FIX / "rgb8.png")
    ref["rgb8.png"] = {"width": 16, "height": 12, "bit_depth": 8,
                       "values": np.array(Image.open(RASTER_FIX / "rgb8.png").convert("L"))
                       .astype(np.int64).ravel().tolist()}
    rgba = np.concatenate([rgb, rng.integers(0, 256, (12, 16, 1), dtype=np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(RASTER_FIX / "rgba8.png")
    ref["rgba8.png"] = {"width": 16, "height": 12, "bit_depth": 8,
                        "values": np.array(Image.open(RASTER_FIX / "rgba8.png").convert("L"))
                        .astype(np.int64).ravel().tolist()}

    # Tiny JPEGs (smooth content so decoders agree within a grey level or two).
    yy, xx = np.mgrid[0:32, 0:40]
    gray = (128 + 100 * np.sin(xx / 6.0) * np.cos(yy / 5.0)).astype(np.uint8)
    Image.fromarray(gray, "L").save(RASTER_FIX / "gray8.jpg", quality=95)
    ref["gray8.jpg"] = {"width": 40, "height": 32, "bit_depth": 8,
                        "values": np.array(Image.open(RASTER_FIX / "gray8.jpg"))
                        .astype(np.int64).ravel().tolist()}
    col = np.stack([gray, 255 - gray, (gray // 2 + 60)], axis=2).astype(np.uint8)
    Image.fromarray(col, "RGB").save(RASTER_FIX / "rgb8.jpg", quality=95)
    ref["rgb8.jpg"] = {"width": 40, "height": 32, "bit_depth": 8,
                       "values": np.array(Image.open(RASTER_FIX / "rgb8.jpg").convert("L"))
                       .astype(np.int64).ravel().tolist()}
    # A PNG saved with a .dcm extension: detection must go by content.
    shutil.copyfile(RASTER_FIX / "rgb8.png", RASTER_FIX / "png_named.dcm")
    return ref


def main() -> int:
    DICOM_FIX.mkdir(parents=True, exist_ok=True)
    refs: dict[str, dict] = {}
    if SHARED.is_dir():
        for name in COPY_FIXTURES:
            shutil.copyfile(SHARED / name, DICOM_FIX / name)
        make_derived(SHARED)
        for p in sorted(SHARED.rglob("*.dcm")):
            key = str(p.relative_to(SHARED))
            refs[key] = reference_for(p)
            refs[key]["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
            print(key, refs[key].get("shape"), refs[key].get("error", ""))
    else:
        print(f"note: {SHARED} is absent; only the committed fixtures are referenced", file=sys.stderr)
    frames = make_issue14()
    make_j2k_small()
    (DICOM_FIX / "frames_reference.json").write_text(json.dumps(frames, sort_keys=True) + "\n")
    for p in sorted(DICOM_FIX.glob("*.dcm")):
        key = "fixtures/" + p.name
        try:
            refs[key] = reference_for(p)
        except Exception as exc:  # noqa: BLE001 - truncated/garbage fixtures are meant to fail
            refs[key] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        print(key, refs[key].get("shape"), refs[key].get("error", ""))
    (DICOM_FIX / "reference.json").write_text(json.dumps(refs, indent=1, sort_keys=True) + "\n")
    raster = make_raster()
    (RASTER_FIX / "raster_reference.json").write_text(json.dumps(raster, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
