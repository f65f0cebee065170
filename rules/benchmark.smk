rule benchmark_board:
    input:
        compiled=lambda wildcards: compilation_record(
            wildcards.model, wildcards.compiler
        ),
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


# The framework model itself on this host, over the same samples: the reference of its variants (accuracy
# change, top-1 agreement and largest output difference in the report).
rule evaluate_model:
    input:
        model=lambda wildcards: model_file(wildcards.model),
        dataset=lambda wildcards: dataset_summary(wildcards.model),
    output:
        result=PATHS["reference"],
    log:
        "results/logs/evaluate_model/{model}.log",
    benchmark:
        "results/logs/evaluate_model/{model}.benchmark.tsv"
    params:
        spec=reference_spec,
    shell:
        scenario_command("inference_performance")
