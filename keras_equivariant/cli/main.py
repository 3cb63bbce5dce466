"""``keras-equivariant``: train, evaluate, certify, export and reproduce from the command line.

```
keras-equivariant train ParallelGCNN --depth 4 --epochs 5 --data-dir data
keras-equivariant evaluate runs/ParallelGCNN-d4-equivariant-cifar10-s0/model.keras --attack pgd
keras-equivariant clever runs/.../model.keras --num-images 10
keras-equivariant export runs/.../model.keras --name parallel_gcnn
keras-equivariant reproduce --preset quick --data-dir data
keras-equivariant explain --models runs/a/model.keras runs/b/model.keras --data-dir data
```

Exit codes: 0 success; 1 missing or unreadable data/model files, or a runtime failure (e.g. a
multi-worker peer died); 2 invalid arguments (argparse
usage errors, unknown model names, bad values); 130 interrupted (rerun the command to resume).
"""

from __future__ import annotations

import argparse
import sys

from keras_equivariant.cli import clever, evaluate, explain, export, reproduce, train

COMMANDS = (train, evaluate, clever, export, reproduce, explain)


def build_parser():
    """The ``keras-equivariant`` argument parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="keras-equivariant",
        description="Equivariant CNNs and their adversarial robustness (FGSM, PGD, CLEVER).",
    )
    from keras_equivariant import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv=None):
    """Runs the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    from keras_equivariant.data import DataFormatError, DataNotFoundError

    prefix = f"keras-equivariant {args.command}: error:"
    try:
        args.run(args)
    except (DataNotFoundError, DataFormatError, FileNotFoundError) as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"{prefix} {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:  # e.g. a multi-worker peer died: a runtime failure, not usage
        print(f"{prefix} {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nkeras-equivariant {args.command}: interrupted; run the same command again to "
              "resume where it stopped.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
