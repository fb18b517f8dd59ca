"""Pack the VGG16 feature weights small enough to travel to a GPU machine, and unpack them there.

A transfer limited to 64 MiB (working tree and carried files) holds PyAV's wheel (36 MB) or the
float32 weights (59 MB), not both. Convolution kernels travel as int8 with one float32 scale
per output channel (biases as float32), xz-compressed: ~13 MB. The unpacked weights differ from
the originals by at most 0.4% of each channel's largest weight: fine for timing (arithmetic cost
does not depend on the values) and for comparisons made with the same weights, not for
quality figures, which are measured on the CPU with the exact weights.

    python benchmarks/gpu/weights.py pack vgg16.pth vgg16.q8.xz
    python benchmarks/gpu/weights.py unpack vgg16.q8.xz vgg16.pth
"""

from __future__ import annotations

import io
import lzma
import sys

import torch


def pack(src: str, dst: str) -> None:
    state = torch.load(src, map_location="cpu", weights_only=True)
    packed: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        value = value.float()
        if value.dim() == 4:
            scale = value.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12) / 127.0
            packed[name + ".q8"] = torch.round(value / scale).to(torch.int8)
            packed[name + ".scale"] = scale
        else:
            packed[name] = value
    buffer = io.BytesIO()
    torch.save(packed, buffer)
    with open(dst, "wb") as fh:
        fh.write(lzma.compress(buffer.getvalue(), preset=6))


def unpack(src: str, dst: str) -> None:
    with open(src, "rb") as fh:
        packed = torch.load(io.BytesIO(lzma.decompress(fh.read())), weights_only=True)
    state: dict[str, torch.Tensor] = {}
    for name, value in packed.items():
        if name.endswith(".q8"):
            base = name[: -len(".q8")]
            state[base] = value.float() * packed[base + ".scale"]
        elif not name.endswith(".scale"):
            state[name] = value
    torch.save(state, dst)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("pack", "unpack"):
        sys.exit(__doc__)
    (pack if sys.argv[1] == "pack" else unpack)(sys.argv[2], sys.argv[3])
