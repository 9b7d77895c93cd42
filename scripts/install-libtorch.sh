#!/usr/bin/env bash
# Installs the lean CPU libtorch 2.13.0 that tch 0.26 needs, from PyPI wheels (540 MB download,
# ~490 MB on disk instead of the 4.7 GB CUDA venv), and links it at <repo>/.libtorch, where
# .cargo/config.toml points LIBTORCH. Reused when already present. See docs/libtorch.md.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
version=2.13.0
cache=${PIPE_CACHE_DIR:-$HOME/.cache/pipe}
dest=$cache/libtorch-$version
if [ -f "$dest/build-version" ] && [ -f "$dest/lib/libtorch_cpu.so" ]; then
  ln -sfn "$dest" "$repo/.libtorch"
  echo "libtorch $version: reusing $dest"
  exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/libtorch-dl.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "libtorch $version: downloading 3 wheels from PyPI into $work"
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  -d "$work" \
  "torch==$version" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85"
stage=$work/libtorch
mkdir -p "$stage/lib"
python3 - "$work" "$stage" <<'PY'
import glob, os, shutil, sys, zipfile
work, stage = sys.argv[1], sys.argv[2]
want = {"torch/lib/libtorch_cpu.so", "torch/lib/libc10.so", "torch/lib/libgomp.so.1",
        "nvidia/cu13/lib/libcudart.so.13", "nvidia/cu13/lib/libcupti.so.13"}
found = set()
for whl in glob.glob(os.path.join(work, "*.whl")):
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            n = info.filename
            if n.startswith("torch/include/") and not n.endswith("/"):
                out = os.path.join(stage, "include", n[len("torch/include/"):])
            elif n in want:
                out = os.path.join(stage, "lib", os.path.basename(n)); found.add(n)
            else:
                continue
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
missing = want - found
if missing:
    sys.exit(f"install-libtorch: wheels lack {sorted(missing)}")
PY
ln -s libtorch_cpu.so "$stage/lib/libtorch.so"
ln -s libgomp.so.1 "$stage/lib/libgomp.so"
echo "$version" > "$stage/build-version"
rm -rf "$dest"; mv "$stage" "$dest"
ln -sfn "$dest" "$repo/.libtorch"
echo "libtorch $version: installed at $dest ($(du -sh "$dest" | cut -f1))"
