# Baseline: seeded Gaussian gene embeddings (the paper's "Random" row).

register_method("random", outputs=["random"])


rule embed_random:
    input:
        cells="results/preprocess/cells.h5",
    output:
        embeddings="results/embeddings/random.tsv",
    params:
        cfg=config["methods"]["random"],
    log:
        "results/logs/embed_random.log",
    benchmark:
        "results/benchmarks/embed_random.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/evaluate.yaml"
    script:
        "../../workflow/scripts/embed_random.py"
