#!/usr/bin/env python3
"""Make the Pixel Padding fixtures and their reference values (tests/io_dicom.rs).

    python scripts/make_padding_fixtures.py   # pydicom >= 3 and numpy; run from the repository root

Pixel Padding Value (0028,0120), with or without Pixel Padding Range Limit (0028,0121), marks
stored values that are not part of the image: the frame around a non-rectangular field, or
background a CR/DX/MG device suppresses (PS3.3 C.7.5.1.1.2; CP 692). The standard names them so
that a viewer leaves them out "when determining the dynamic range of an image". Both files come
from the committed real CR chest film `cr_chest_pa_mono1_10bit_explicit_le_440.dcm`, shrunk 2x2 to
220x220 (as in make_voi_fixtures.py) and framed by a 10-pixel border of padding to 240x240 (16 % of
the pixels), with no window in the header, so the loader's automatic window is what is tested:

* `padding_range_mono1_240.dcm`: MONOCHROME1, 10 bits unsigned. The film is clipped to 0..1019 and
  the border holds noise in 1020..1023 (a detector's background is not one value: the reason for
  the range limit); PixelPaddingValue 1023, PixelPaddingRangeLimit 1020 (for MONOCHROME1 the value
  is the larger end, PS3.3 C.7.5.1.1.2).
* `padding_signed_mono2_240.dcm`: MONOCHROME2, 16 bits signed, RescaleSlope 2, RescaleIntercept
  -1000: the film inverted and stored as 4 (1023 - v) - 3000 (so -3000..1092) and the border at PixelPaddingValue -4096
  (SS), a single value outside the film's values.
* `padding_reference.json`: per file, the number of padding pixels and numpy's 0.5 % and 99.5 %
  order statistics (rank round(q (n - 1)), the loader's rule) of the film's modality values, with
  and without the padding (pydicom's apply_modality_lut; MONOCHROME1 not inverted).

Deterministic: re-running reproduces the committed files.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "dicom"
SOURCE = FIX / "cr_chest_pa_mono1_10bit_explicit_le_440.dcm"
BORDER = 10


def framed(film: np.ndarray, border_values: np.ndarray) -> np.ndarray:
    """The film inside a BORDER-pixel frame whose pixels come from `border_values`."""
    h, w = film.shape
    out = border_values.reshape(h + 2 * BORDER, w + 2 * BORDER).astype(film.dtype)
    out[BORDER:BORDER + h, BORDER:BORDER + w] = film
    return out


def order_stats(vals: np.ndarray) -> list[float]:
    """The 0.5 % and 99.5 % order statistics with the loader's rank rule."""
    v = np.sort(vals.ravel().astype(np.float64))
    n = len(v)
    return [float(v[min(int(np.floor(q * (n - 1) + 0.5)), n - 1)]) for q in (0.005, 0.995)]


def main() -> None:
    ds = pydicom.dcmread(SOURCE)
    film = ds.pixel_array.astype(np.float64).reshape(220, 2, 220, 2).mean(axis=(1, 3)).round()
    for k in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation"):
        if k in ds:
            delattr(ds, k)
    side = 220 + 2 * BORDER
    ds.Rows = ds.Columns = side
    rng = np.random.default_rng(20261205)
    ref = {}

    one = copy.deepcopy(ds)
    noise = rng.integers(1020, 1024, size=side * side)
    pixels = framed(np.minimum(film, 1019).astype(np.uint16), noise)
    one.PixelData = pixels.tobytes()
    one.add_new(0x00280120, "US", 1023)  # PixelPaddingValue
    one.add_new(0x00280121, "US", 1020)  # PixelPaddingRangeLimit
    one.SOPInstanceUID = "1.2.826.0.1.3680043.10.1.20.1"
    one.file_meta.MediaStorageSOPInstanceUID = one.SOPInstanceUID
    out = FIX / "padding_range_mono1_240.dcm"
    one.save_as(out, enforce_file_format=True)

    two = copy.deepcopy(ds)
    two.PhotometricInterpretation = "MONOCHROME2"
    two.BitsAllocated = two.BitsStored = 16
    two.HighBit = 15
    two.PixelRepresentation = 1
    two.RescaleSlope, two.RescaleIntercept = 2, -1000
    # Inverted, so that the MONOCHROME2 film is a positive like the original.
    stored = (4 * (1023 - film) - 3000).astype(np.int16)
    pixels = framed(stored, np.full(side * side, -4096))
    two.PixelData = pixels.tobytes()
    two.add_new(0x00280120, "SS", -4096)  # PixelPaddingValue
    two.SOPInstanceUID = "1.2.826.0.1.3680043.10.1.20.2"
    two.file_meta.MediaStorageSOPInstanceUID = two.SOPInstanceUID
    out_two = FIX / "padding_signed_mono2_240.dcm"
    two.save_as(out_two, enforce_file_format=True)

    for path, lo, hi in ((out, 1020, 1023), (out_two, -4096, -4096)):
        back = pydicom.dcmread(path)
        stored = back.pixel_array
        pad = (stored >= lo) & (stored <= hi)
        m = apply_modality_lut(stored, back).astype(np.float64)
        ref[path.name] = {
            "padding_pixels": int(pad.sum()),
            "film_percentiles": order_stats(m[~pad]),
            "all_percentiles": order_stats(m),
            "film_min": float(m[~pad].min()),
            "film_max": float(m[~pad].max()),
            "decoder_note": "pydicom " + pydicom.__version__ + " apply_modality_lut",
        }
    (FIX / "padding_reference.json").write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")
    print(json.dumps(ref, indent=1))


if __name__ == "__main__":
    main()
