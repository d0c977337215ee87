#!/usr/bin/env python3
"""Marks a symbol-version requirement of an ELF shared library as weak (VER_FLG_WEAK).

Why: TorchSharp 0.107's libLibTorchSharp.so asks for GLIBCXX_3.4.32 (GCC 13), while Debian 12
ships libstdc++ up to GLIBCXX_3.4.30. Only the symbol _ZSt21ios_base_library_initv carries that
version and nothing relocates against it, so flagging the requirement weak lets the dynamic
loader accept the library (it then only notes the missing version). Idempotent: a file already
patched is left alone. Exit status 0 on success, 1 with a message on any problem.

usage: elf_weak_version.py VERSION FILE [FILE ...]
"""
import struct
import sys

SHT_GNU_VERNEED = 0x6FFFFFFE
VER_FLG_WEAK = 0x2


def patch(path: str, version: str) -> str:
    with open(path, "r+b") as f:
        data = f.read()
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ValueError("not a 64-bit little-endian ELF file")
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        for sh in sections:
            if sh[1] != SHT_GNU_VERNEED:
                continue
            strtab = sections[sh[6]][4]  # sh_link -> .dynstr, its file offset
            entry = sh[4]
            for _ in range(sh[7]):  # sh_info = number of Verneed entries
                _, cnt, _, aux, nxt = struct.unpack_from("<HHIII", data, entry)
                a = entry + aux
                for _ in range(cnt):
                    _, flags, _, name, anext = struct.unpack_from("<IHHII", data, a)
                    end = data.index(b"\0", strtab + name)
                    if data[strtab + name:end].decode() == version:
                        if flags & VER_FLG_WEAK:
                            return "already weak"
                        # Rewrite only the two flag bytes, so that builds patching the same
                        # package copy at once never see a half-written file.
                        f.seek(a + 4)
                        f.write(struct.pack("<H", flags | VER_FLG_WEAK))
                        return "patched"
                    a += anext
                entry += nxt
        return "no such requirement"


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 1
    version = sys.argv[1]
    for path in sys.argv[2:]:
        try:
            print(f"{path}: {version} {patch(path, version)}")
        except (OSError, ValueError, struct.error) as e:
            print(f"{path}: cannot patch: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
