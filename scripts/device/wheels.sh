#!/usr/bin/env bash
# Download into .whl/ the wheels that the lent GPU machine's image lacks (README.md), for its python 3.12, and drop
# pretty_midi's bundled General MIDI soundfont (6 MB; the synthetic world renders MIDI with its own synthesisers), so
# that the tree, the wheels and a carried teacher fit the 64 MiB that travels.
#   bash scripts/device/wheels.sh          # then name ".whl" in the run's carry
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
# the versions that ran there (2026-11-27, H200 image with torch 2.11 and triton 3.6)
uvx pip download -q --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --no-deps -d .whl \
    av==18.1.0 open_clip_torch==3.3.0 webdataset==1.0.2 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 \
    pretty_midi==0.2.11.post0 mido==1.3.3 importlib_resources==6.5.2 ftfy==6.3.1 wcwidth==0.9.4 braceexpand==0.1.7
for w in .whl/pretty_midi-*.whl; do
    unzip -l "$w" | grep -q '\.sf2$' || continue
    tmp=$(mktemp -d)
    uvx --from wheel wheel unpack "$w" -d "$tmp" >/dev/null
    d=$(ls -d "$tmp"/pretty_midi-*/)
    rm -f "$d"/pretty_midi/*.sf2
    grep -v '\.sf2,' "$d"/*.dist-info/RECORD > "$tmp/RECORD" && mv "$tmp/RECORD" "$d"/*.dist-info/RECORD
    rm "$w" && uvx --from wheel wheel pack "$d" -d .whl >/dev/null
    rm -rf "$tmp"
done
du -sh .whl
