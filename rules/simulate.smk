# The simulated demo screen. Its outputs are the default config's input files, so a
# fresh clone runs end to end; a config pointing input.* elsewhere never uses it.


rule simulate_demo:
    output:
        cells=DEMO_INPUT["cells"],
        ground_truth=DEMO_INPUT["ground_truth"],
        factors=f"{DEMO_DIR}/factors.tsv",
        tiles=all_tiles() if IS_DEMO else [],
    params:
        sim=config["simulate"],
        channels=config["channels"],
        controls=config["controls"],
        tiles=demo_tiles_pattern,
    log:
        "results/logs/simulate_demo.log",
    benchmark:
        "results/benchmarks/simulate_demo.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow/scripts/simulate_demo.py"
