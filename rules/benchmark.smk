rule benchmark_board:
    input:
        compiled=lambda wildcards: compiled_file(wildcards.model, wildcards.compiler),
        model=lambda wildcards: model_file(wildcards.model),
        dataset=lambda wildcards: dataset_summary(wildcards.model),
    output:
        result=PATHS["benchmark"],
    log:
        "results/logs/benchmark_board/{model}-{compiler}-{board}-t{num_threads}.log",
    benchmark:
        "results/logs/benchmark_board/{model}-{compiler}-{board}-t{num_threads}.benchmark.tsv"
    threads: benchmark_threads
    resources:
        **board_resources(),
    params:
        spec=benchmark_spec,
    shell:
        scenario_command("inference_client")
