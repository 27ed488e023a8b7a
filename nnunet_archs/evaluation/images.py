"""Reading a segmentation completely, or not at all, with nnU-Net's reader.

SimpleITK reads a gzip stream cut short, and an uncompressed NIfTI file shorter than its header says, without
complaint, returning zeros from the cut onward: a half-written prediction would become a partial mask. So a
``.gz`` file is decompressed here, once (Python's gzip refuses a stream that ends early), a NIfTI image's size is
checked against its header (nibabel reads the header), and the decompressed bytes are handed to nnU-Net's reader
through a temporary file in memory (``/dev/shm`` where there is one), which then does no second decompression.
Other formats are read by the reader itself, which refuses a short file (ITK's NRRD and MetaImage readers do).

The image's geometry is the reader's: the array's shape, nnU-Net's spacing, and the placement the reader records
(SimpleITK: origin and direction; nibabel: the affine). Label values come back as the smallest unsigned integer type
that holds every value dataset.json defines; the values that are not defined (7 where the labels are 0-2, 1.5, -1)
are reported, not guessed at."""
from __future__ import annotations

import gzip
import io
import os
import tempfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import FrozenSet, Iterator, List, Tuple

import numpy as np

from nnunet_archs.errors import UserError

# numpy.allclose's default tolerance, which nnU-Net's dataset integrity check uses to compare an image with its label
RELATIVE_TOLERANCE, ABSOLUTE_TOLERANCE = 1e-5, 1e-8
TOLERANCE_TEXT = f"relative {RELATIVE_TOLERANCE:g} + absolute {ABSOLUTE_TOLERANCE:g}, numpy.allclose"
_SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
_CHUNK_VOXELS = 1 << 18  # label values are converted and checked this many at a time (in cache)


@dataclass(frozen=True)
class Geometry:
    """Where an image's voxels are, as nnU-Net's reader reports them."""

    dimensions: int
    shape: Tuple[int, ...]
    spacing: Tuple[float, ...]
    placement: Tuple[Tuple[str, Tuple[float, ...]], ...]

    def differences(self, other: "Geometry") -> List[Tuple[str, str, str]]:
        """(what, this value, the other's) for each way ``other`` lies elsewhere."""
        if (self.dimensions, self.shape) != (other.dimensions, other.shape):
            return [("shape", self.size_text(), other.size_text())]
        found = [] if _close(self.spacing, other.spacing) else [("spacing", _text(self.spacing),
                                                                  _text(other.spacing))]
        theirs = dict(other.placement)
        return found + [(what, _text(mine), _text(theirs.get(what, ()))) for what, mine in self.placement
                        if not _close(mine, theirs.get(what, ()))]

    def size_text(self) -> str:
        return f"{self.dimensions}D, {' x '.join(map(str, self.shape[-self.dimensions:]))} voxels"


def _text(values: Tuple[float, ...]) -> str:
    return f"({', '.join(f'{v:.6g}' for v in values)})"


def _close(a, b) -> bool:
    return len(a) == len(b) and bool(np.allclose(a, b, rtol=RELATIVE_TOLERANCE, atol=ABSOLUTE_TOLERANCE))


@dataclass
class Segmentation:
    """A label image (channel first, as nnU-Net's reader returns it), its geometry, and the values in it that
    dataset.json does not define."""

    labels: np.ndarray
    geometry: Geometry
    undefined: Tuple[float, ...]


def read_segmentation(path: Path, reader, defined: FrozenSet[int]) -> Segmentation:
    """``path`` read whole by ``reader`` (an nnU-Net reader/writer), or a UserError naming the file."""
    with _complete(Path(path)) as readable:
        try:
            values, properties = reader.read_seg(readable)
        except Exception as problem:  # the reader's own refusal (ITK, nibabel, ...) of a file it cannot read
            message = str(problem).strip().splitlines()
            raise UserError(f"cannot read {path} with {type(reader).__name__}: "
                            f"{message[-1] if message else type(problem).__name__}") from None
    labels, undefined = _as_labels(values, defined)
    return Segmentation(labels, _geometry(values.shape, properties), undefined)


@contextmanager
def _complete(path: Path) -> Iterator[str]:
    """A file name that holds the whole of ``path`` for the reader, after the checks above."""
    if not path.name.endswith(".gz"):
        if path.name.endswith(".nii"):
            with open(path, "rb") as handle:
                _check_nifti(handle.read(540), path.stat().st_size, path)
        yield str(path)
        return
    try:
        data = gzip.decompress(path.read_bytes())
    except (EOFError, OSError, zlib.error) as problem:
        raise UserError(f"{path} is cut short or not a gzip stream ({problem}): not measured (still being "
                        f"written, or left by a killed job?)") from None
    inner = path.name[:-len(".gz")]
    if inner.endswith(".nii"):
        _check_nifti(data, len(data), path)
    with tempfile.NamedTemporaryFile(suffix=os.path.splitext(inner)[1], dir=_SCRATCH) as handle:
        handle.write(data)
        handle.flush()
        del data
        yield handle.name


def _check_nifti(head: bytes, size: int, path: Path) -> None:
    """A NIfTI-1 or -2 image must hold all the voxels its header announces."""
    import nibabel
    for header_class in (nibabel.Nifti1Header, nibabel.Nifti2Header):
        block = head[:header_class.template_dtype.itemsize]  # the header alone (its extensions do not matter)
        if header_class.may_contain_header(block):
            try:
                header = header_class.from_fileobj(io.BytesIO(block), check=False)
                needed = int(header.get_data_offset()) + int(np.prod(header.get_data_shape())) * \
                    header.get_data_dtype().itemsize
            except Exception as problem:  # nibabel's refusal of a malformed header
                raise UserError(f"{path} has no valid NIfTI header: {problem}") from None
            if size < needed:
                raise UserError(f"{path} is cut short: its NIfTI header announces {needed} bytes, it holds {size}: "
                                f"not measured (still being written, or left by a killed job?)")
            return
    raise UserError(f"{path} is not a NIfTI image (no NIfTI-1 or NIfTI-2 header)")


def _geometry(shape: Tuple[int, ...], properties: dict) -> Geometry:
    placement, dimensions = [], len(shape) - 1
    for key, record in sorted(properties.items()):
        if isinstance(record, dict) and key.endswith("_stuff"):  # the reader's own geometry: sitk_stuff, ...
            for what, value in sorted(record.items()):
                if what == "spacing":
                    dimensions = len(value)
                elif isinstance(value, (tuple, list, np.ndarray)):
                    placement.append((what, tuple(np.asarray(value, dtype=float).ravel().tolist())))
    return Geometry(dimensions, tuple(shape), tuple(float(s) for s in properties["spacing"]), tuple(placement))


def _as_labels(values: np.ndarray, defined: FrozenSet[int]) -> Tuple[np.ndarray, Tuple[float, ...]]:
    """The reader's float array as integer labels, chunk by chunk (so no second float copy is made), and the
    values dataset.json does not define."""
    top = max(defined)
    labels = np.empty(values.shape, np.min_scalar_type(top))
    odd = set()
    flat_values, flat_labels = values.reshape(-1), labels.reshape(-1)
    with np.errstate(invalid="ignore"):  # NaN and out-of-range values are found below, not cast silently
        for start in range(0, flat_values.size, _CHUNK_VOXELS):
            chunk, converted = flat_values[start:start + _CHUNK_VOXELS], flat_labels[start:start + _CHUNK_VOXELS]
            np.copyto(converted, chunk, casting="unsafe")
            if not np.array_equal(converted, chunk):
                inexact = converted != chunk
                odd.update(np.unique(chunk[inexact]).tolist())
                converted[inexact] = 0  # in no label's mask, as a defined value outside the labels is
    if labels.max(initial=0) > top:
        odd.update(np.unique(labels[labels > top]).tolist())
    odd.update(v for v in range(top) if v not in defined and (labels == v).any())
    return labels, tuple(sorted(odd, key=lambda v: (v != v, v)))
