rule benchmark_board:
    input:
        compiled=lambda wildcards: compiled_file(wildcards.model, wildcards.compiler),
        model=lambda wildcards: model_file(wildcards.model),
        dataset=lambda wildcards: dataset_summary(wildcards.model),
    output:
        result="results/benchmarks/{model}/{compiler}/{board}.json",
    log:
        "results/logs/benchmark_board/{model}-{compiler}-{board}.log",
    benchmark:
        "results/logs/benchmark_board/{model}-{compiler}-{board}.benchmark.tsv"
    conda:
        "../workflow/envs/edge-ai.yaml"
    threads: benchmark_threads
    resources:
        **board_resources(),
    params:
        python=PYTHON,
        spec=lambda wildcards: spec(
            model=model_part(wildcards.model, model_file(wildcards.model)),
            compiler=compiler_part(
                wildcards.compiler, compiled_file(wildcards.model, wildcards.compiler)
            ),
            protocol=part(PROTOCOL),
            runtime=runtime_part(
                wildcards.compiler, wildcards.board, benchmark_threads(wildcards)
            ),
            dataset=dataset_part(dataset_of(wildcards.model)),
            board=board_part(wildcards.board),
            options={
                "output": f"results/benchmarks/{wildcards.model}/{wildcards.compiler}",
                "reportname": wildcards.board,
                "skip_compilation": True,
                "warmup": benchmark_settings()["warmup"],
                "max_samples": benchmark_settings()["max_samples"],
            },
        ),
    shell:
        "exec {params.python:q} -m edge_ai_lib.scenarios.inference_client --spec {params.spec:q} "
        "> {log:q} 2>&1"
