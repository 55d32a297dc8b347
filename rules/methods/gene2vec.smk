# Baseline: pretrained gene2vec vectors (word2vec text format), restricted to the
# screened genes. Skipped, with a message, when methods.gene2vec.path is null.

register_method(
    "gene2vec",
    outputs=["gene2vec"],
    skip_reason=(
        None
        if config["methods"]["gene2vec"]["path"]
        else "no pretrained file configured (set methods.gene2vec.path)"
    ),
)


rule embed_gene2vec:
    input:
        cells="results/preprocess/cells.h5",
        vectors=config["methods"]["gene2vec"]["path"] or [],
    output:
        embeddings="results/embeddings/gene2vec.tsv",
    params:
        cfg=config["methods"]["gene2vec"],
    log:
        "results/logs/embed_gene2vec.log",
    benchmark:
        "results/benchmarks/embed_gene2vec.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../workflow/scripts/embed_gene2vec.py"
