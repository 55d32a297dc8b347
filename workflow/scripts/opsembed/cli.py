"""The ``opsembed`` command line: subcommands for single steps outside Snakemake.

``opsembed evaluate EMBEDDINGS.tsv --ground-truth COMPLEXES.tsv --out DIR`` scores one
embedding file against a complex list with the pipeline's benchmark.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .io.errors import InputError


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Exit codes: 0 success, 2 bad input or an unreadable/unwritable file (a one-line
    message is printed to stderr, no traceback).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return args.run(args)
    except InputError as exc:
        message = str(exc)
    except UnicodeDecodeError as exc:
        message = f"a file is not UTF-8 text ({exc}). Save it as UTF-8."
    except OSError as exc:
        message = f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)
    print(f"opsembed {args.command}: error: {message}", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opsembed", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ev = sub.add_parser("evaluate", help="score gene embeddings against protein complexes",
                        description="Curate the complexes against the embedding's genes, then "
                                    "compute mAP, repeated k-means (purity, NMI, ARI), the k "
                                    "sweep, known-relationship recall and a UMAP.")
    ev.add_argument("embeddings", type=Path, help="embedding TSV: column 'gene', then dimensions")
    ev.add_argument("--ground-truth", required=True, type=Path,
                    help="complex TSV: 'name<TAB>genes separated by spaces' or 'complex<TAB>gene'")
    ev.add_argument("--out", required=True, type=Path, help="output folder")
    ev.add_argument("--config", type=Path, default=None,
                    help="config YAML; its 'evaluation' block and 'controls' are used "
                         "(default: the schema's defaults)")
    ev.add_argument("--method", default=None, help="method name (default: the file's stem)")
    ev.add_argument("--controls", default=None,
                    help="control gene label to exclude (default: the config's 'controls')")
    ev.add_argument("--threads", type=int, default=1,
                    help="torch threads for k-means (default 1: its operations are small)")
    ev.set_defaults(run=_evaluate)
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate.benchmark import evaluate_embeddings
    from .evaluate.curate import curate_ground_truth
    from .io.config import load_config
    from .io.embeddings import read_embeddings
    from .io.ground_truth import ground_truth_files
    from .io.tables import write_table

    try:
        cfg = load_config(args.config)
    except UnicodeDecodeError:
        raise InputError(f"{args.config}: not UTF-8 text; expected a YAML config. "
                         "Save it as UTF-8.") from None
    controls = args.controls if args.controls is not None else cfg["controls"]
    evaluation = cfg["evaluation"]
    embeddings = read_embeddings(args.embeddings)
    curated, log = curate_ground_truth(args.ground_truth, embeddings.index, controls,
                                       evaluation["ground_truth"])
    write_table(curated, args.out / "ground_truth.tsv")
    write_table(log, args.out / "ground_truth_log.tsv")
    method = args.method or args.embeddings.stem
    (name,) = ground_truth_files(str(args.ground_truth), key="--ground-truth")
    metrics = evaluate_embeddings(embeddings, curated, evaluation, method, args.out,
                                  controls=controls, threads=args.threads, ground_truth=name)
    print(metrics.to_frame().T.to_csv(sep="\t", index=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
