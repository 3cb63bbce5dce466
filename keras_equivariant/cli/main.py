"""``keras-equivariant``: train, evaluate, certify, export and reproduce from the command line.

```
keras-equivariant train ParallelGCNN --depth 4 --epochs 5 --data-dir data
keras-equivariant evaluate runs/ParallelGCNN-d4-equivariant-cifar10-s0/model.keras --attack pgd
keras-equivariant evaluate runs/.../model.keras --shard 0/4      # one of 4 machines; then
keras-equivariant evaluate runs/.../model.keras --merge          # combine the 4 shards
keras-equivariant clever runs/.../model.keras --num-images 10
keras-equivariant export runs/.../model.keras --name parallel_gcnn
keras-equivariant reproduce --preset quick
keras-equivariant explain --models runs/a/model.keras runs/b/model.keras
```

The same runs as ``python -m keras_equivariant``. Arguments are parsed before TensorFlow is
imported (``--help`` and argument errors answer at once), and TensorFlow's C++ start-up logs
are silenced unless ``--verbose`` is given or ``TF_CPP_MIN_LOG_LEVEL`` is already set.
TensorFlow's oneDNN CPU kernels are requested (``TF_ENABLE_ONEDNN_OPTS=1``) unless the user set
the variable (docs/performance.md); ``--version`` and ``--verbose`` say which setting applies.

Exit codes: 0 success; 1 missing or unreadable data/model files, or any other failure while
running, e.g. a multi-worker peer died (a one-line message, no traceback); 2 invalid arguments (argparse usage errors, unknown
model names, bad values, settings that conflict with stored results); 130 interrupted (rerun
the command to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from keras_equivariant.cli import clever, evaluate, explain, export, reproduce, train

COMMANDS = (train, evaluate, clever, export, reproduce, explain)
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def request_onednn(environ=None):
    """Sets ``TF_ENABLE_ONEDNN_OPTS=1`` unless the user set it or TensorFlow is already loaded.

    oneDNN kernels made training 2.4x faster on an AVX2-only AMD EPYC where TensorFlow leaves
    them off by default, with logits that agree to float round-off (docs/performance.md). Only
    the command line does this: the variable is process-global, so ``import keras_equivariant``
    never changes it.

    Args:
        environ: the environment mapping to read and update (default ``os.environ``).

    Returns:
        The setting that applies, for ``--version`` and the ``--verbose`` header, e.g.
        ``"TF_ENABLE_ONEDNN_OPTS=1, set by the command line"``.
    """
    environ = os.environ if environ is None else environ
    if ONEDNN_VARIABLE in environ:
        return f"{ONEDNN_VARIABLE}={environ[ONEDNN_VARIABLE]}, set by the user"
    if "tensorflow" in sys.modules:  # too late: the kernels were chosen at TensorFlow's import
        return f"{ONEDNN_VARIABLE} unset, TensorFlow already imported with its default"
    environ[ONEDNN_VARIABLE] = "1"
    return f"{ONEDNN_VARIABLE}=1, set by the command line"


def build_parser(onednn_setting=None):
    """The ``keras-equivariant`` argument parser with one subparser per command.

    ``onednn_setting``, the text :func:`request_onednn` returned, is shown by ``--version``.
    """
    from keras_equivariant import __version__

    parser = argparse.ArgumentParser(
        prog="keras-equivariant",
        description="Equivariant CNNs and their adversarial robustness (FGSM, PGD, CLEVER).",
    )
    version = f"%(prog)s {__version__}" + (f" ({onednn_setting})" if onednn_setting else "")
    parser.add_argument("--version", action="version", version=version)
    parser.add_argument("--verbose", dest="tensorflow_logs", action="store_true",
                        help="show TensorFlow's C++ start-up logs (silenced by default unless "
                             "TF_CPP_MIN_LOG_LEVEL is set) and a line naming the CPU and its "
                             "oneDNN state")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


@contextlib.contextmanager
def _quiet_native_stderr():
    """Sends what native code writes to the stderr file descriptor (absl's "All log messages
    before absl::InitializeLog()" preamble, CUDA probing) to /dev/null while TensorFlow loads."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. an embedded interpreter)
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def start_tensorflow(show_logs=False):
    """Imports TensorFlow (silencing its C++ start-up logs unless ``show_logs`` or the user set
    ``TF_CPP_MIN_LOG_LEVEL``) and the library's serializable layers and models."""
    if "tensorflow" not in sys.modules:
        if show_logs or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
            import tensorflow  # noqa: F401
        else:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
            with _quiet_native_stderr():
                import tensorflow  # noqa: F401,F811
    # What `import keras_equivariant` does outside the command line: register the layers.
    from keras_equivariant import layers, models  # noqa: F401


def _one_line(error):
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def option_names(parser, command):
    """``{python argument: "--cli-option"}`` of ``command``'s options (``max_examples`` ->
    ``--max-examples``), to name the option the user typed in errors raised by the library."""
    commands = next(action for action in parser._actions
                    if isinstance(action, argparse._SubParsersAction)).choices
    return {action.dest: next(option for option in action.option_strings
                              if option.startswith("--"))
            for action in commands[command]._actions
            if any(option.startswith("--") for option in action.option_strings)}


def _in_cli_terms(message, options):
    """``message`` with each backticked Python argument name replaced by its CLI option."""
    for name, option in options.items():
        message = message.replace(f"`{name}`", f"`{option}`")
    return message


def main(argv=None):
    """Runs the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    onednn_setting = request_onednn()
    parser = build_parser(onednn_setting)
    args = parser.parse_args(argv)
    prefix = f"keras-equivariant {args.command}: error:"
    try:
        start_tensorflow(args.tensorflow_logs)
        if args.tensorflow_logs:
            from keras_equivariant.utils.platform import describe

            print(f"keras-equivariant: {describe()}; {onednn_setting}", file=sys.stderr)
        from keras_equivariant.data import DataFormatError, DataNotFoundError

        try:
            args.run(args)
        except (DataNotFoundError, DataFormatError, FileNotFoundError) as error:
            print(f"{prefix} {error}", file=sys.stderr)
            return 1
        except ValueError as error:
            message = _in_cli_terms(str(error), option_names(parser, args.command))
            print(f"{prefix} {message}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        print(f"\nkeras-equivariant {args.command}: interrupted; run the same command again to "
              "resume where it stopped.", file=sys.stderr)
        return 130
    except Exception as error:  # a runtime failure: one line, exit 1 (2 means bad arguments)
        print(f"{prefix} {_one_line(error)} (rerun with --verbose for TensorFlow's logs)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
