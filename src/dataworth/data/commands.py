"""`dataworth data list|verify|prepare`: the dataset files under a data root.

    list     every known dataset, the layout it is expected in, and which of its parts are found
    verify   read the original files: formats, counts, checksums (the archive's md5); exit 1 on a problem
    prepare  convert them once into the shared uint8 cache (what studies on this root then read)

The root is --root, else DATAWORTH_DATA. Sources are named as in studies: `cifar10`, or one part
`cifar10:test`, `cifar10c:fog`, `folder:<path>`; by default every source found under the root.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _root(args) -> Path:
    from dataworth.data.sources import data_root

    if args.root:  # given on the command line: it wins over DATAWORTH_DATA
        return Path(args.root).expanduser().resolve()
    try:
        return data_root(None)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _found_parts(root: Path, source) -> list[str]:
    from dataworth.data.readers import DataFileError

    found = []
    for part in source.parts:
        try:
            source.paths(root, part)
            found.append(part)
        except (DataFileError, FileNotFoundError):
            pass
    return found


def _selected_or_exit(args, root: Path) -> list[tuple[str, str]]:
    """`_selected`, or one line and exit 1 when nothing is found under the root."""
    pairs = _selected(args, root)
    if not pairs:
        print(f"error: no dataset files under {root}; `dataworth data list` shows the layouts", file=sys.stderr)
        raise SystemExit(1)
    return pairs


def _selected(args, root: Path) -> list[tuple[str, str]]:
    """(source, part) pairs named on the command line, or every part found under the root."""
    from dataworth.data.sources import SOURCES, parse_ref

    if not args.sources:
        return [(s.key, p) for s in SOURCES.values() for p in _found_parts(root, s)]
    pairs = []
    for name in args.sources:
        if name in SOURCES:
            parts = _found_parts(root, SOURCES[name]) or list(SOURCES[name].parts[:1])
            pairs += [(name, p) for p in parts]
            continue
        if name.startswith("cifar10c:") and "@" not in name:
            name += "@1"  # a corruption file holds every severity
        try:
            ref = parse_ref(name)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        pairs.append((ref.source, ref.part))
    return pairs


def cmd_list(args) -> None:
    from dataworth.data.sources import SOURCES, cache_root

    root = _root(args)
    print(f"data root: {root}  (prepared cache: {cache_root(root)})")
    for source in SOURCES.values():
        found = _found_parts(root, source)
        if source.parts:
            where = f"found: {', '.join(found)} ({source.paths(root, found[0])[0].parent})" if found else "not found"
        else:
            where = f"name it by path: {source.key}:<path under the root>"
        print(f"{source.key:14} {source.official}\n{'':14} layout: {source.layout}\n{'':14} {where}")


def cmd_verify(args) -> None:
    from dataworth.data.readers import DataFileError
    from dataworth.data.sources import SOURCES

    root = _root(args)
    pairs = _selected_or_exit(args, root)
    problems = 0
    for key, part in pairs:
        source = SOURCES[key]
        try:
            arrays = source.read(root, part)
        except (DataFileError, FileNotFoundError) as exc:
            problems += 1
            print(f"FAIL {key}:{part}: {source.missing_message(root, exc)}")
            continue
        x, y = arrays["x"], arrays["y"]
        published = source.published.get(part)
        note = "" if published in (None, len(y)) else f" (published: {published:,})"
        print(f"ok   {key}:{part}: {len(y):,} images of {tuple(x.shape[1:])} uint8, labels "
              f"{int(y.min())}..{int(y.max())}{note}")
    if problems:
        print(f"{problems} part(s) failed; expected layouts: `dataworth data list`", file=sys.stderr)
        raise SystemExit(1)


def cmd_prepare(args) -> None:
    from dataworth.data.cache import prepare_part
    from dataworth.data.readers import DataFileError

    root = _root(args)
    pairs = _selected_or_exit(args, root)
    for key, part in pairs:
        try:
            folder = prepare_part(root, key, part, log=lambda msg: print(msg, flush=True))
        except DataFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        print(f"prepared {key}:{part} -> {folder}", flush=True)


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="dataset files under a data root: list, verify, prepare")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    for name, func, what in (
        ("list", cmd_list, "known datasets, their expected layout, and which are found"),
        ("verify", cmd_verify, "read the original files: formats, counts, checksums"),
        ("prepare", cmd_prepare, "convert the files once into the shared uint8 cache"),
    ):
        p = sub.add_parser(name, help=what)
        p.add_argument("--root", help="the data root (default: DATAWORTH_DATA)")
        if name != "list":
            p.add_argument("sources", nargs="*", help="cifar10, cinic10:train, cifar10c:fog, folder:<path> ... "
                                                      "(default: every one found)")
        p.set_defaults(func=func)
