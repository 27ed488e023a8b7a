#!/usr/bin/env bash
# Wheels for benchmarks/gpu_validation.py on a GPU machine that has no package index but its own torch (the lent
# machines: Python 3.12, torch 2.11 + torchvision 0.26 for CUDA 13, numpy, scipy, timm, ... preinstalled).
#
# Run here, where pip reaches PyPI:   benchmarks/gpu_wheels.sh
# It builds this package as a wheel, walks the Requires-Dist of it and of every wheel it fetches (nnunetv2,
# dynamic-network-architectures, monai, submitit and theirs; markers evaluated for CPython 3.12 on x86-64 Linux),
# skips every package the GPU image already holds (a second torch or numpy there would break the install), and
# downloads the rest into .whl/ (git-ignored): binary wheels for CPython 3.12 manylinux, at the version pinned in
# constraints.txt where that pin fits, and pure-Python packages that publish only a source archive built here with
# `pip wheel`. Two measures keep the folder well under the 64 MiB a device run may carry: imagecodecs (25 MiB) is
# left out (see SKIP), and wheels over 16 MiB (SimpleITK, 50 MiB, which nnU-Net imports at start) are recompressed
# with LZMA, which pip installs like any wheel (same files and RECORD; SimpleITK 50 -> 27 MiB, several minutes of
# CPU). It prints the one command that installs the folder there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
WHEELS=.whl
LIMIT_MIB=${LIMIT_MIB:-56}
rm -rf "$WHEELS"
mkdir -p "$WHEELS"
"$PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation -w "$WHEELS" .

"$PYTHON" - "$WHEELS" <<'EOF'
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

WHEELS = Path(sys.argv[1])
# The image 'cuda' of the lent machines, as /work/.library/device/KINDS.md lists it ("Python packages already
# there", read 2026-11-17). Packages named here are never carried.
PREINSTALLED = set(map(canonicalize_name, """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile
tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel
wrapt xarray xxhash yarl zipp
""".split()))
# nnunetv2 requires these, but what the validation runs never imports them (checked by listing the modules every
# process of a CPU run of benchmarks/gpu_validation.py had loaded at exit)
SKIP = {"imagecodecs": "tifffile's optional codecs for compressed TIFF files; tifffile works without them and the "
                       "validation reads and writes NIfTI",
        # nnunetv2 lists the PyPI backport of argparse; on PYTHONPATH it would shadow the standard library's
        "argparse": "a Python 2 backport of the standard library's argparse, which it would shadow"}
REPACK_OVER_BYTES = 16 * 2 ** 20
TARGET = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
          "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
          "platform_machine": "x86_64", "os_name": "posix", "extra": ""}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]
PINS = {canonicalize_name(name): version for name, version in
        re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", Path("constraints.txt").read_text(), re.M)}


def requirements(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        headers = Parser().parsestr(archive.read(metadata).decode())
    for text in headers.get_all("Requires-Dist") or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate(TARGET):
            yield requirement


def fetch(requirement: Requirement) -> Path:
    name = canonicalize_name(requirement.name)
    pin = PINS.get(name)
    spec = f"{name}=={pin}" if pin and requirement.specifier.contains(pin, prereleases=True) else \
        f"{name}{requirement.specifier}"
    before = set(WHEELS.iterdir())
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                "--python-version", "3.12", "--implementation", "cp", "-d", str(WHEELS), spec]
    for platform in PLATFORMS:
        download[-1:-1] = ["--platform", platform]
    if subprocess.run(download, capture_output=True).returncode != 0:
        # no wheel for CPython 3.12 on Linux: build one here, which must then be pure Python
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(WHEELS), spec],
                       check=True)
    wheel = next(iter(set(WHEELS.iterdir()) - before))
    tags = {str(t) for t in parse_wheel_filename(wheel.name)[3]}
    if not any(t.endswith("-none-any") for t in tags) and not any("cp312" in t or "abi3" in t for t in tags):
        sys.exit(f"{wheel.name} is neither pure Python nor built for CPython 3.12")
    return wheel


ours = next(WHEELS.glob("nnunet_archs-*.whl"))
queue, seen, carried = list(requirements(ours)), {"nnunet-archs"}, []
while queue:
    requirement = queue.pop(0)
    name = canonicalize_name(requirement.name)
    if name in seen:
        continue
    seen.add(name)
    if name in PREINSTALLED:
        continue
    if name in SKIP:
        print(f"left out: {name} ({SKIP[name]})")
        continue
    wheel = fetch(requirement)
    carried.append(wheel)
    queue.extend(requirements(wheel))
for wheel in carried:
    if wheel.stat().st_size > REPACK_OVER_BYTES:
        before = wheel.stat().st_size
        repacked = wheel.with_suffix(".lzma")
        with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(repacked, "w", zipfile.ZIP_LZMA) as target:
            for info in source.infolist():
                target.writestr(info, source.read(info), compress_type=zipfile.ZIP_LZMA)
        repacked.replace(wheel)
        print(f"recompressed {wheel.name} with LZMA: {before / 2 ** 20:.1f} -> {wheel.stat().st_size / 2 ** 20:.1f} MiB")
for wheel in sorted(carried + [ours]):
    print(f"{wheel.stat().st_size / 2 ** 20:6.2f} MiB  {wheel.name}")
EOF

total=$(du -cb "$WHEELS"/*.whl | tail -1 | cut -f1)
count=$(ls "$WHEELS"/*.whl | wc -l)
echo "$count wheels, $((total / 1024)) KiB in $WHEELS/"
if [ "$total" -gt $((LIMIT_MIB * 1024 * 1024)) ]; then
    echo "error: $WHEELS/ exceeds ${LIMIT_MIB} MiB; a device run carries at most 64 MiB in all" >&2
    exit 1
fi
echo "On the GPU machine (carry $WHEELS):"
echo "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $WHEELS/*.whl && export PYTHONPATH=/tmp/site"
