# opsembed: optical pooled screen -> gene embeddings -> CORUM benchmark -> HTML report.
#
#   snakemake --cores all                 # the simulated demo screen, end to end
#   snakemake --cores all all_preprocess  # one stage: all_preprocess, all_train, all_embed, all_evaluate
#
# See README.md and config/README.md.

import sys
from pathlib import Path

# The library lives beside the rule scripts, so that jobs in conda envs import it too.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))


from opsembed.io.config import is_demo


# config.yaml holds the defaults; the simulated demo adds demo.yaml. Snakemake re-applies
# your --configfile and --config on top of each file, so yours always win.
configfile: Path(workflow.basedir) / "config" / "config.yaml"


if is_demo(config):

    configfile: Path(workflow.basedir) / "config" / "demo.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/preprocess.smk"


for method_rules in sorted(Path(workflow.basedir, "rules", "methods").glob("*.smk")):

    include: method_rules


include: "rules/evaluate.smk"
include: "rules/export.smk"
include: "rules/report.smk"


localrules:
    all,
    all_preprocess,
    all_train,
    all_embed,
    all_evaluate,


rule all:
    input:
        "results/report.html",
        export_outputs,


rule all_preprocess:
    input:
        "results/preprocess/cells.h5",


rule all_train:
    input:
        training_outputs,


rule all_embed:
    input:
        embedding_files,


rule all_evaluate:
    input:
        "results/evaluation/metrics.tsv",
        benchmark_outputs,
        export_outputs,
