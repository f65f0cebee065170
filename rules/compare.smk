# Comparison with an earlier run: `snakemake results/comparison.json --config 'comparison={baseline: DIR}'`.
# The job fails (exit status 3, the table in its log) when a run regressed beyond the thresholds, so a
# CI step fails with it.
rule compare_runs:
    input:
        benchmark_results(),
    output:
        "results/comparison.json",
    log:
        "results/logs/compare_runs.log",
    params:
        spec=comparison_spec,
    shell:
        f"exec {PYTHON} -m edge_ai_lib.scenarios.compare_runs --spec {{params.spec:q}} > {{log:q}} 2>&1"
