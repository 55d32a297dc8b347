# Preprocessing (GRAPE paper section 3.2): validate inputs, BaSiC flatfield per plate,
# percentile rescaling, 96x96 crops per well, z-scoring against each batch's controls,
# results/preprocess/cells.h5 a virtual dataset over the per-well files. Every job that
# touches pixels or tiles is per plate or per well; the combine steps (check_tiles,
# rescale_percentiles, combine_moments, merge_cells) read only small per-plate/per-well
# files (opsembed.preprocess.merge describes the z-scoring steps).


rule validate_inputs:
    input:
        cells=config["input"]["cells"],
        ground_truth=list(GROUND_TRUTHS.values()),  # the primary one first
    output:
        cells="results/preprocess/cells.parquet",
    params:
        columns=config["input"]["columns"],
        preset=config["input"]["preset"],
        channels=config["channels"],
        controls=config["controls"],
        batch_key=config["batch_key"],
        # further id columns read as text: those of the OOD levels (e.g. series)
        text_columns=sorted({c for level in config["ood"]["levels"] for c in level["columns"]}),
        ground_truth=config["evaluation"]["ground_truth"],
    log:
        "results/logs/validate_inputs.log",
    benchmark:
        "results/benchmarks/validate_inputs.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow/scripts/validate_inputs.py"


rule validate_tiles:
    input:
        cells="results/preprocess/cells.parquet",
        tiles=plate_tiles,
    output:
        table="results/preprocess/tiles/{plate}.tsv",
    params:
        channels=config["channels"],
        tiles=tiles_pattern,
        channel_tokens=config["input"]["channel_tokens"],
        crop_size=config["preprocess"]["crop"]["size"],
    log:
        "results/logs/validate_tiles/{plate}.log",
    benchmark:
        "results/benchmarks/validate_tiles/{plate}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow/scripts/validate_tiles.py"


rule check_tiles:
    input:
        plates=plate_tile_tables,
    output:
        table="results/preprocess/tiles.tsv",
    log:
        "results/logs/check_tiles.log",
    benchmark:
        "results/benchmarks/check_tiles.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow/scripts/check_tiles.py"


rule fit_flatfield:
    input:
        cells="results/preprocess/cells.parquet",
        checked="results/preprocess/tiles.tsv",
        tiles=plate_sampled_tiles("flatfield"),
    output:
        model="results/preprocess/flatfield/{plate}.npz",
        qc=report(
            "results/preprocess/qc/flatfield_{plate}.png",
            caption="../workflow/report/flatfield.rst",
            category="Preprocessing QC",
            labels={"figure": "flatfield", "plate": "{plate}"},
        ),
    params:
        cfg=config["preprocess"]["flatfield"],
        channels=config["channels"],
        seed=config["seed"],
        tile_refs=plate_tile_refs,
        tiles=tiles_pattern,
        channel_tokens=config["input"]["channel_tokens"],
    log:
        "results/logs/fit_flatfield/{plate}.log",
    benchmark:
        "results/benchmarks/fit_flatfield/{plate}.tsv"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow/scripts/fit_flatfield.py"


rule sample_percentiles:
    input:
        cells="results/preprocess/cells.parquet",
        flatfield=plate_flatfield,
        tiles=plate_sampled_tiles("rescale"),
    output:
        sample="results/preprocess/percentiles/{plate}.npz",
    params:
        cfg=config["preprocess"]["rescale"],
        channels=config["channels"],
        plates=PLATES,
        seed=config["seed"],
        tiles=tiles_pattern,
        channel_tokens=config["input"]["channel_tokens"],
    log:
        "results/logs/sample_percentiles/{plate}.log",
    benchmark:
        "results/benchmarks/sample_percentiles/{plate}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow/scripts/sample_percentiles.py"


rule rescale_percentiles:
    input:
        samples=plate_samples,
    output:
        table="results/preprocess/percentiles.tsv",
        qc=report(
            "results/preprocess/qc/percentiles.png",
            caption="../workflow/report/percentiles.rst",
            category="Preprocessing QC",
            labels={"figure": "percentiles"},
        ),
    params:
        cfg=config["preprocess"]["rescale"],
        channels=config["channels"],
        plates=PLATES,
    log:
        "results/logs/rescale_percentiles.log",
    benchmark:
        "results/benchmarks/rescale_percentiles.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow/scripts/rescale_percentiles.py"


rule crop_well:
    input:
        cells="results/preprocess/cells.parquet",
        tiles=well_tiles,
        flatfield=plate_flatfield,
        percentiles="results/preprocess/percentiles.tsv",
    output:
        crops=temp("results/preprocess/crops/{plate}/{well}.h5"),
        moments="results/preprocess/moments/{plate}/{well}.npz",
    params:
        crop=config["preprocess"]["crop"],
        channels=config["channels"],
        controls=config["controls"],
        tiles=tiles_pattern,
        channel_tokens=config["input"]["channel_tokens"],
    log:
        "results/logs/crop_well/{plate}/{well}.log",
    benchmark:
        "results/benchmarks/crop_well/{plate}/{well}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow/scripts/crop_well.py"


rule combine_moments:
    input:
        moments=well_moments,
        cells="results/preprocess/cells.parquet",
    output:
        zscore="results/preprocess/zscore.tsv",
        stats="results/preprocess/zscore.npz",
        summary=report(
            "results/preprocess/summary.tsv",
            caption="../workflow/report/summary.rst",
            category="Dataset",
        ),
    params:
        batch_key=config["batch_key"],
        channels=config["channels"],
        crop_size=config["preprocess"]["crop"]["size"],
    log:
        "results/logs/combine_moments.log",
    benchmark:
        "results/benchmarks/combine_moments.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow/scripts/combine_moments.py"


rule zscore_well:
    input:
        crops="results/preprocess/crops/{plate}/{well}.h5",
        stats="results/preprocess/zscore.npz",
    output:
        h5="results/preprocess/cells/{plate}/{well}.h5",
    log:
        "results/logs/zscore_well/{plate}/{well}.log",
    benchmark:
        "results/benchmarks/zscore_well/{plate}/{well}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow/scripts/zscore_well.py"


rule merge_cells:
    input:
        wells=well_cells,
        stats="results/preprocess/zscore.npz",
    output:
        h5="results/preprocess/cells.h5",
    params:
        controls=config["controls"],
        batch_key=config["batch_key"],
        channels=config["channels"],
        seed=config["seed"],
        crop_size=config["preprocess"]["crop"]["size"],
    log:
        "results/logs/merge_cells.log",
    benchmark:
        "results/benchmarks/merge_cells.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/preprocess.yaml"
    script:
        "../workflow/scripts/merge_cells.py"
