"""`efficientnet-search <command>`: parses the command line and calls the library.

Each command is a pair of functions: `_add_<name>(parser)` declares its flags and
`_run_<name>(args)` calls the library function that does the work. `COMMANDS` maps the
command names to those pairs and the line `--help` shows for each; nothing else lives here.
Library errors (ValueError, FileNotFoundError) print as one line and exit with status 2;
`--verbosity=1` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from absl import app, flags, logging
from absl.flags import argparse_flags

EXIT_USAGE = 2
# distribute.STRATEGY_NAMES, spelled out so parsing flags does not import TensorFlow: `--help`
# and a mistyped flag answer in a second (tests/cli/test_cli.py keeps the two equal).
STRATEGY_CHOICES = ("auto", "cpu", "gpu", "mirrored", "multi_worker", "tpu")
EXPORT_FORMATS = ("savedmodel", "tflite", "tflite_int8")  # export.FORMATS, likewise


# ----------------------------------------------------------------------------- build
def _add_build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant",
                        help="b0 ... b7, lite0 ... lite4, v2-b0 ... v2-b3, v2-s, v2-m, v2-l")
    parser.add_argument("--width", type=float, help="width coefficient (channels multiplier)")
    parser.add_argument("--depth", type=float, help="depth coefficient (repeats multiplier)")
    parser.add_argument("--resolution", type=int, help="input resolution in pixels")
    parser.add_argument("--dropout", type=float, help="dropout before the classifier")
    parser.add_argument("--num_classes", type=int, default=1000)
    parser.add_argument("--blocks", nargs="+", help="baseline block strings (default: B0/Lite)")
    parser.add_argument("--all", action="store_true",
                        help="print every variant of --family beside the published figures")
    parser.add_argument("--family", choices=("v1", "v2"),
                        help="v1 (B0-B7, Lite0-4) or v2 (EfficientNetV2); with --all default v1")
    parser.add_argument("--output", help="save the built model to this .keras file")


def _run_build(args: argparse.Namespace) -> None:
    from efficientnet_search.cli import architecture as commands

    commands.build(args)


# ----------------------------------------------------------------------------- scale
def _add_scale(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--coefficients", help="results.json of a grid run, or a preset: paper")
    parser.add_argument("--blocks_from", help="baseline from a NAS or grid results.json")
    parser.add_argument("--alpha", type=float, help="depth coefficient per phi")
    parser.add_argument("--beta", type=float, help="width coefficient per phi")
    parser.add_argument("--gamma", type=float, help="resolution coefficient per phi")
    parser.add_argument("--phi", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7])
    parser.add_argument("--base_resolution", type=int, default=224)
    parser.add_argument("--num_classes", type=int, default=1000)
    parser.add_argument("--output_dir", help="save each family member as <dir>/phi<N>.keras")


def _run_scale(args: argparse.Namespace) -> None:
    from efficientnet_search.cli import architecture as commands

    commands.scale(args)


def _add_worker_flags(parser: argparse.ArgumentParser,
                      workers_help: str = "local worker processes (default: the config's)",
                      ) -> None:
    """--storage and --workers, the flags of every command that runs a study."""
    parser.add_argument("--storage", help="Optuna storage URL shared by workers")
    parser.add_argument("--workers", type=int, help=workers_help)


# ----------------------------------------------------------------------------- grid
def _add_grid(parser: argparse.ArgumentParser) -> None:
    _add_config_flags(parser)
    _add_worker_flags(parser)
    parser.add_argument("--seed", type=int, help="base random seed")


def _run_grid(args: argparse.Namespace) -> None:
    from efficientnet_search.search.grid import run as grid

    grid.main(args)


# ----------------------------------------------------------------------------- nas
def _add_nas(parser: argparse.ArgumentParser) -> None:
    _add_config_flags(parser)
    _add_worker_flags(parser)
    parser.add_argument("--seed", type=int, help="training seed of the search trials")


def _run_nas(args: argparse.Namespace) -> None:
    from efficientnet_search.search.nas import run as nas

    nas.main(args)


# ----------------------------------------------------------------------------- oneshot
def _add_oneshot(parser: argparse.ArgumentParser) -> None:
    _add_config_flags(parser)
    _add_worker_flags(parser, "processes scoring the proposals that need no score (default 1)")
    parser.add_argument("--seed", type=int, help="seed of the supernet, searches, calibration")


def _run_oneshot(args: argparse.Namespace) -> None:
    from efficientnet_search.search.nas.oneshot import run as oneshot

    oneshot.main(args)


# ----------------------------------------------------------------------------- gridshot
def _add_gridshot(parser: argparse.ArgumentParser) -> None:
    _add_config_flags(parser)
    _add_worker_flags(parser, "local worker processes of the stand-alone trainings")
    parser.add_argument("--seed", type=int, help="base seed of the stand-alone grid")


def _run_gridshot(args: argparse.Namespace) -> None:
    from efficientnet_search.search.gridshot import run as gridshot

    gridshot.main(args)


# ----------------------------------------------------------------------------- pipeline
def _add_pipeline(parser: argparse.ArgumentParser) -> None:
    _add_config_flags(parser)
    _add_worker_flags(parser, "local worker processes per stage")


def _run_pipeline(args: argparse.Namespace) -> None:
    from efficientnet_search.search import pipeline

    pipeline.main(args)


# ----------------------------------------------------------------------------- train
def _add_train(parser: argparse.ArgumentParser) -> None:
    _add_config_flags(parser)
    parser.add_argument(
        "--strategy", choices=STRATEGY_CHOICES, default=None
    )
    parser.add_argument("--tpu", help="TPU name or address for the cluster resolver")
    parser.add_argument("--seed", type=int, help="random seed")


def _run_train(args: argparse.Namespace) -> None:
    from efficientnet_search.training import train

    train.main(args)


# ----------------------------------------------------------------------------- evaluate
def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a .keras file")
    parser.add_argument("--data", required=True, help="data source URI, e.g. npz:PATH")
    parser.add_argument("--split", default="test")
    parser.add_argument("--resolution", type=int, help="evaluate at another resolution")
    parser.add_argument("--batch_size", type=int, default=64)


def _run_evaluate(args: argparse.Namespace) -> None:
    from efficientnet_search.training import train

    train.evaluate_main(args)


# ----------------------------------------------------------------------------- finetune
def _add_finetune(parser: argparse.ArgumentParser) -> None:
    _add_config_flags(parser)
    parser.add_argument("--seed", type=int, help="random seed")


def _run_finetune(args: argparse.Namespace) -> None:
    from efficientnet_search.medical import finetune

    finetune.main(args)


# ----------------------------------------------------------------------------- export
def _add_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a .keras file")
    parser.add_argument(
        "--format", choices=EXPORT_FORMATS, default="savedmodel"
    )
    parser.add_argument("--output", required=True, help="output path")
    parser.add_argument("--data", help="data source URI for int8 calibration and the check")


def _run_export(args: argparse.Namespace) -> None:
    from efficientnet_search import export

    export.main(args)


# ----------------------------------------------------------------------------- report
def _add_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run_dir", required=True, help="a grid run directory")


def _run_report(args: argparse.Namespace) -> None:
    from efficientnet_search.search.grid import report

    report.main(args)


# ----------------------------------------------------------------------------- verify
def _add_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run_dir", required=True, help="a finished grid run directory")
    parser.add_argument("--phi", type=int, nargs="+",
                        help="phi values to check (>= 2; default 2 3 without --epochs_factor)")
    parser.add_argument("--epochs_factor", type=_budget_factor, nargs="+",
                        help="retrain the best set and single-dimension points at these "
                             "multiples of the proxy's epochs (e.g. 2 4)")
    parser.add_argument("--storage", help="Optuna storage URL shared by workers")
    parser.add_argument("--workers", type=int, help="local worker processes")


def _budget_factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a number > 0 (2: twice the proxy's epochs), got {text!r}")
    return value


def _run_verify(args: argparse.Namespace) -> None:
    from efficientnet_search.search.grid import verify

    verify.main(args)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    parser.add_argument("--run_dir", help="run directory (default: runs/<config name>)")


class Command(NamedTuple):
    """One command: its flags, the adapter that runs it, and its line in `--help`."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]
    help: str


COMMANDS: dict[str, Command] = {
    "build": Command(_add_build, _run_build,
                     "build one EfficientNet; print its per-stage cost"),
    "scale": Command(_add_scale, _run_scale,
                     "scale a model family (phi=1..7) from alpha, beta, gamma"),
    "grid": Command(_add_grid, _run_grid,
                    "search alpha, beta, gamma at phi=1 (grid of proxies)"),
    "nas": Command(_add_nas, _run_nas,
                   "search a baseline's block list (accuracy against measured cost)"),
    "oneshot": Command(_add_oneshot, _run_oneshot,
                       "search a baseline's block list on a weight-sharing supernet"),
    "gridshot": Command(_add_gridshot, _run_gridshot,
                         "score the phi=1 grid on a supernet; train the best"),
    "pipeline": Command(_add_pipeline, _run_pipeline,
                        "chain nas -> grid -> family in one run directory"),
    "train": Command(_add_train, _run_train,
                     "train one model with tf.distribute (CPU, GPU, TPU)"),
    "evaluate": Command(_add_evaluate, _run_evaluate,
                        "top-1/top-5 accuracy of a .keras model on a data source"),
    "finetune": Command(_add_finetune, _run_finetune,
                        "fine-tune on medical images; clinical report, Grad-CAM"),
    "export": Command(_add_export, _run_export,
                      "export a .keras model to SavedModel or TFLite"),
    "report": Command(_add_report, _run_report,
                      "redraw a grid run's report.md and plots"),
    "verify": Command(_add_verify, _run_verify,
                      "check a grid's answer at larger phi (2, 3)"),
}


class _Parser(argparse_flags.ArgumentParser):
    """Reports usage errors on one line with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"efficientnet-search: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parses `argv` (program name first) into a namespace with `.command`."""
    parser = _Parser(
        prog="efficientnet-search", allow_abbrev=False,
        description="EfficientNet compound scaling: build, search, train, fine-tune, export.",
        epilog="`efficientnet-search COMMAND --help` lists a command's flags.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                metavar="COMMAND", title="commands")
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, allow_abbrev=False, help=command.help,
                                             description=command.help))
    return parser.parse_args(list(argv[1:]))


def main(args: argparse.Namespace) -> None:
    """Runs one parsed command, turning user errors into one line and exit status 2."""
    from efficientnet_search import quiet_start

    run = COMMANDS[args.command].run
    quiet_start.import_tensorflow()  # every command needs it; parsing the flags did not
    quiet_start.send_tensorflow_logs_through_absl()
    try:
        run(args)
    except (ValueError, FileNotFoundError) as err:
        if flags.FLAGS.verbosity >= 1:
            raise
        print(f"efficientnet-search {args.command}: error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def run_main() -> None:
    """Console-script entry point."""
    logging.set_verbosity(logging.INFO)
    app.run(main, flags_parser=parse_args)


if __name__ == "__main__":
    run_main()
