#!/usr/bin/env python3
"""Make the VOI LUT Sequence fixture and pydicom's reference values for it (tests/io_dicom.rs).

    python scripts/make_voi_fixtures.py      # pydicom >= 3 and numpy; run from the repository root

From the committed real CR chest film `cr_chest_pa_mono1_10bit_explicit_le_440.dcm` (MONOCHROME1,
10 bits; see tests/fixtures/dicom/ATTRIBUTION.md), shrunk 2x2 to 220x220 to keep the file small:

* `voi_lut_mono1_220.dcm`: a VOI LUT Sequence (0028,3010) holding one non-linear table (a
  logistic curve over the stored range 0..1023, 12-bit entries declared as 16 bits per entry,
  as Agfa CR writes them) *and* the original WindowCenter/Width, so the test can check that the
  table wins, as in pydicom's apply_voi_lut and dicom-pixeldata.
* `voi_sigmoid_mono1_220.dcm`: no table, the original window with VOI LUT Function (0028,1056)
  SIGMOID (PS3.3 C.11.2.1.3.1).
* `modality_lut_mono1_220.dcm`: no VOI table; a Modality LUT Sequence (0028,3000) instead of the
  rescale (a square-root curve from the 10 stored bits to values up to 4095 in 16-bit entries, first
  mapped value 0)
  and a window in its output units.
* `voi_linear_exact_mono1_220.dcm`: no table, a window (centre 500.25, width 400.5) with
  VOI LUT Function LINEAR_EXACT (PS3.3 C.11.2.1.3.2: the ramp spans exactly c ± w/2, where
  LINEAR's spans c − 0.5 ± (w − 1)/2; read as LINEAR it is off by 0.5/w of the range).
* `enhanced_voi_2frames_mono2_220.dcm`: an Enhanced XA image of two frames (the film, inverted to
  MONOCHROME2, and its mirror image) with nothing at the top level but functional groups: the
  rescale (slope 2, intercept -1000) in the Shared Functional Groups' Pixel Value Transformation
  Sequence and each frame's window in its item of the Per-Frame Functional Groups' Frame VOI LUT
  Sequence (frame 1: centre 0, width 1200, LINEAR; frame 2: centre -200, width 700.5,
  LINEAR_EXACT), as enhanced IODs carry them (PS3.3 C.7.6.16).
* `voi_reference.json`: pydicom's apply_voi_lut output (before any MONOCHROME1 inversion) at fixed
  coordinates, its min, max and mean, and the table's first entry, last entry, minimum and maximum.

Deterministic: re-running reproduces the committed files.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.sequence import Sequence

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "dicom"
SOURCE = FIX / "cr_chest_pa_mono1_10bit_explicit_le_440.dcm"


def enhanced(ds: Dataset, small: np.ndarray) -> tuple[Path, list[tuple[float, float, str]]]:
    """The two-frame Enhanced XA fixture; returns its path and each frame's window."""
    enh = copy.deepcopy(ds)
    for elem in list(enh):
        if elem.tag.element == 0 or elem.keyword in ("WindowCenter", "WindowWidth", "VOILUTSequence"):
            del enh[elem.tag]
    enh.SOPClassUID = "1.2.840.10008.5.1.4.1.1.12.1.1"  # Enhanced XA Image Storage
    enh.file_meta.MediaStorageSOPClassUID = enh.SOPClassUID
    enh.Modality = "XA"
    enh.PhotometricInterpretation = "MONOCHROME2"
    film = (1023 - small.astype(np.int32)).astype(np.uint16)
    enh.NumberOfFrames = 2
    enh.PixelData = np.stack([film, film[:, ::-1]]).tobytes()
    pvt = Dataset()
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = 2, -1000, "US"
    group = Dataset()
    group.PixelValueTransformationSequence = Sequence([pvt])
    enh.SharedFunctionalGroupsSequence = Sequence([group])
    windows = [(0.0, 1200.0, "LINEAR"), (-200.0, 700.5, "LINEAR_EXACT")]
    per_frame = []
    for centre, width, function in windows:
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth, voi.VOILUTFunction = centre, width, function
        group = Dataset()
        group.FrameVOILUTSequence = Sequence([voi])
        per_frame.append(group)
    enh.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    enh.SOPInstanceUID = "1.2.826.0.1.3680043.10.1.21.2"
    enh.file_meta.MediaStorageSOPInstanceUID = enh.SOPInstanceUID
    out = FIX / "enhanced_voi_2frames_mono2_220.dcm"
    enh.save_as(out, enforce_file_format=True)
    return out, windows


def main() -> None:
    ds = pydicom.dcmread(SOURCE)
    arr = ds.pixel_array.astype(np.float64)
    small = arr.reshape(220, 2, 220, 2).mean(axis=(1, 3)).round().astype(np.uint16)
    ds.Rows, ds.Columns = small.shape
    ds.PixelData = small.tobytes()
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.10.1.19.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID

    # First mapped value 16 (values below take the first entry), 1000 entries (so 1016..1023 take
    # the last), a logistic curve on 0..4095 that is far from the linear window.
    first, n = 16, 1000
    x = np.arange(n) + first
    curve = 1.0 / (1.0 + np.exp(-(x - 520.0) / 110.0))
    table = np.round(100 + 3900 * (curve - curve.min()) / (curve.max() - curve.min())).astype(np.uint16)
    item = Dataset()
    item.LUTDescriptor = [n, first, 16]
    item["LUTDescriptor"].VR = "US"
    item.LUTData = table.tolist()
    item["LUTData"].VR = "US"
    item.LUTExplanation = "logistic test curve"
    ds.VOILUTSequence = Sequence([item])
    out = FIX / "voi_lut_mono1_220.dcm"
    ds.save_as(out, enforce_file_format=True)

    sig = pydicom.dcmread(out)
    del sig.VOILUTSequence
    sig.VOILUTFunction = "SIGMOID"
    sig.SOPInstanceUID = "1.2.826.0.1.3680043.10.1.19.2"
    sig.file_meta.MediaStorageSOPInstanceUID = sig.SOPInstanceUID
    out_sig = FIX / "voi_sigmoid_mono1_220.dcm"
    sig.save_as(out_sig, enforce_file_format=True)

    mod = pydicom.dcmread(out_sig)
    del mod.VOILUTFunction
    mtab = np.round(4095 * np.sqrt(np.arange(1024) / 1023.0)).astype(np.uint16)
    mitem = Dataset()
    mitem.LUTDescriptor = [1024, 0, 16]
    mitem["LUTDescriptor"].VR = "US"
    mitem.LUTData = mtab.tolist()
    mitem["LUTData"].VR = "US"
    mitem.ModalityLUTType = "US"
    mod.ModalityLUTSequence = Sequence([mitem])
    mod.WindowCenter, mod.WindowWidth = 2600, 3000
    mod.SOPInstanceUID = "1.2.826.0.1.3680043.10.1.19.3"
    mod.file_meta.MediaStorageSOPInstanceUID = mod.SOPInstanceUID
    out_mod = FIX / "modality_lut_mono1_220.dcm"
    mod.save_as(out_mod, enforce_file_format=True)

    exact = pydicom.dcmread(out_sig)
    exact.VOILUTFunction = "LINEAR_EXACT"
    exact.WindowCenter, exact.WindowWidth = 500.25, 400.5
    exact.SOPInstanceUID = "1.2.826.0.1.3680043.10.1.21.1"
    exact.file_meta.MediaStorageSOPInstanceUID = exact.SOPInstanceUID
    out_exact = FIX / "voi_linear_exact_mono1_220.dcm"
    exact.save_as(out_exact, enforce_file_format=True)

    out_enh, frame_windows = enhanced(ds, small)

    coords = [[r, c] for r in (0, 37, 110, 163, 219) for c in (0, 58, 110, 171, 219)]

    def entry(vals: np.ndarray, how: str, **extra) -> dict:
        """Shape, min, max, mean and the values at `coords` of pydicom's output `vals`."""
        return {
            "shape": list(vals.shape),
            "min": float(vals.min()),
            "max": float(vals.max()),
            "mean": float(vals.mean()),
            "coords": coords,
            "values": [float(vals[r, c]) for r, c in coords],
            "decoder_note": "pydicom " + pydicom.__version__ + " " + how,
            **extra,
        }

    def modality(path: Path) -> tuple[Dataset, np.ndarray]:
        back = pydicom.dcmread(path)
        return back, apply_modality_lut(back.pixel_array, back)

    back, m = modality(out)
    ref = {
        "voi_lut_mono1_220.dcm": entry(
            apply_voi_lut(m, back).astype(np.float64), "apply_voi_lut",
            table_first=int(table[0]), table_last=int(table[-1]),
            table_min=int(table.min()), table_max=int(table.max())),
    }
    back, m = modality(out_sig)
    # apply_windowing's output spans the stored bits' range; divided by it, the function itself.
    y_max = 2.0 ** int(back.BitsStored) - 1.0
    ref["voi_sigmoid_mono1_220.dcm"] = entry(
        apply_voi_lut(m, back).astype(np.float64) / y_max,
        "apply_voi_lut (SIGMOID) / (2^bits - 1)")
    _, m = modality(out_mod)
    ref["modality_lut_mono1_220.dcm"] = entry(
        m.astype(np.float64), "apply_modality_lut",
        table_min=int(mtab.min()), table_max=int(mtab.max()))
    back, m = modality(out_exact)
    ref["voi_linear_exact_mono1_220.dcm"] = entry(
        apply_voi_lut(m, back).astype(np.float64) / y_max,
        "apply_voi_lut (LINEAR_EXACT) / (2^bits - 1)")
    # pydicom reads windows and rescales at the top level only: each frame's functional groups
    # are copied there, and its windowed values divided by the window's output range.
    enh = pydicom.dcmread(out_enh)
    frames = enh.pixel_array
    shared = enh.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    for k, (centre, width, function) in enumerate(frame_windows):
        flat = copy.deepcopy(enh)
        del flat.SharedFunctionalGroupsSequence, flat.PerFrameFunctionalGroupsSequence
        flat.NumberOfFrames = 1
        flat.RescaleSlope, flat.RescaleIntercept = shared.RescaleSlope, shared.RescaleIntercept
        flat.WindowCenter, flat.WindowWidth, flat.VOILUTFunction = centre, width, function
        y_lo = -1000.0
        y_hi = 2.0 * (2 ** int(flat.BitsStored) - 1) - 1000.0
        windowed = apply_voi_lut(apply_modality_lut(frames[k], flat), flat)
        ref[f"enhanced_voi_2frames_mono2_220.dcm#{k + 1}"] = entry(
            (windowed.astype(np.float64) - y_lo) / (y_hi - y_lo),
            f"apply_voi_lut ({function}, frame {k + 1}'s groups at the top level), scaled to 0..1",
            centre=centre, width=width, function=function)
    (FIX / "voi_reference.json").write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")
    print(out, out.stat().st_size, ref["voi_lut_mono1_220.dcm"]["min"], ref["voi_lut_mono1_220.dcm"]["max"])


if __name__ == "__main__":
    main()
