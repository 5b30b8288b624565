"""Which crates the binary's code comes from: `cargo bloat --crates` from
the symbol table, with nothing to install.

    .venv/bin/python bench/bloat.py BINARY [--top N]

BINARY must keep its symbols (an unstripped build: bench/profiles keeps
each candidate's unstripped binary beside the stripped copy it measures).
Every function symbol's size (GNU `nm --print-size`, demangled) is counted
for the crate its path starts with; a trait method (`<T as Trait>::f`) is
counted for the crate of `T`, the type whose code it is, as cargo bloat
does; and, unlike cargo bloat, generic code of the standard library made
for a crate's types (`core::ptr::drop_in_place<aws_sdk_ecs::...>`) counts
for that crate, since that crate is what brings it in. Code the linker cannot name (no symbol) is shown as a remainder of
the text section. A measurement, not a test: nothing runs it in CI.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

# The first path segment of a demangled symbol, after any leading `<`, `&`,
# `mut `, `dyn ` or `impl ` of a qualified path.
CRATE = re.compile(r"^(?:[<&*(\[]|mut |dyn |impl |const )*([A-Za-z_][A-Za-z0-9_]*)(?:::|$|<)")


STANDARD = {"core", "alloc", "std"}
# A path's first segment: a name not preceded by `::` or part of a name.
PATH_ROOT = re.compile(r"(?<![\w:])([A-Za-z_][A-Za-z0-9_]*)::")


def crate_of(symbol: str) -> str:
    """The crate a demangled symbol belongs to; `?` for C and other
    symbols without a Rust path (ring's and musl's C code, for example)."""
    if "::" not in symbol:
        return "? (C, assembly, unnamed)"
    found = CRATE.match(symbol)
    if not found:
        return "? (C, assembly, unnamed)"
    crate = found.group(1)
    if crate in STANDARD:
        # The first other crate named in its generic arguments, if any.
        arguments = symbol.find("<", found.end())
        for other in PATH_ROOT.finditer(symbol, max(arguments, 0)) if arguments >= 0 else ():
            if other.group(1) not in STANDARD:
                return other.group(1)
    return crate


def text_size(binary: Path) -> int:
    """The size of the .text section, from `size -A`."""
    out = subprocess.run(["size", "-A", str(binary)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == ".text":
            return int(fields[1])
    raise SystemExit(f"bloat: {binary} has no .text section")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary", type=Path)
    parser.add_argument("--top", type=int, default=20, help="crates to list (default 20)")
    args = parser.parse_args()
    listing = subprocess.run(["nm", "--print-size", "--size-sort", "--demangle", str(args.binary)],
                             capture_output=True, text=True)
    if listing.returncode != 0 or not listing.stdout.strip():
        print(f"bloat: no symbols in {args.binary} (stripped?): {listing.stderr.strip()}", file=sys.stderr)
        return 1
    by_crate: Counter[str] = Counter()
    # Identical functions folded into one by the linker share an address:
    # their code is there once, counted for the first name seen.
    addresses: set[str] = set()
    for line in listing.stdout.splitlines():
        fields = line.split(maxsplit=3)
        # address, size, type, name; only code (t/T, and W/w weak code).
        if len(fields) == 4 and fields[2] in "tTwW" and fields[0] not in addresses:
            addresses.add(fields[0])
            by_crate[crate_of(fields[3])] += int(fields[1], 16)
    text = text_size(args.binary)
    named = sum(by_crate.values())
    print(f"{args.binary}: file {args.binary.stat().st_size / 1e6:.1f} MB, .text {text / 1e6:.2f} MB")
    print()
    print("| crate | code | share of .text |")
    print("|---|---|---|")
    for crate, size in by_crate.most_common(args.top):
        print(f"| {crate} | {size / 1e6:.2f} MB | {100 * size / text:.1f} % |")
    rest = named - sum(size for _, size in by_crate.most_common(args.top))
    print(f"| {len(by_crate) - min(args.top, len(by_crate))} other crates | {rest / 1e6:.2f} MB |"
          f" {100 * rest / text:.1f} % |")
    print(f"| not in the symbol table | {(text - named) / 1e6:.2f} MB | {100 * (text - named) / text:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
