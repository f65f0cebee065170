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
        wrapper=lambda wildcards: config["models"][wildcards.model]["wrapper"],
        model_arguments=lambda wildcards: cli_args(
            config["models"][wildcards.model].get("args")
        ),
        compiler_class=lambda wildcards: config["compilers"][wildcards.compiler][
            "class"
        ],
        compiler_arguments=lambda wildcards: cli_args(
            config["compilers"][wildcards.compiler].get("args")
        ),
        runtime_class=lambda wildcards: config["compilers"][wildcards.compiler][
            "runtime"
        ],
        dataset_class=lambda wildcards: config["datasets"][
            dataset_of(wildcards.model)
        ]["class"],
        dataset_root=lambda wildcards: f"results/datasets/{dataset_of(wildcards.model)}",
        board=lambda wildcards: config["boards"][wildcards.board],
        board_arguments=lambda wildcards: board_cli(wildcards.board),
        runtime_arguments=lambda wildcards: cli_args(
            config["boards"][wildcards.board].get("runtime_args")
        ),
        settings=BENCHMARK,
        report_dir=lambda wildcards: f"results/benchmarks/{wildcards.model}/{wildcards.compiler}",
        received=lambda wildcards: f"results/boards/{wildcards.board}/received-model."
        f"{compiled_suffix(wildcards.compiler)}",
        max_samples=lambda wildcards: (
            f"--max-samples {BENCHMARK['max_samples']}"
            if BENCHMARK["max_samples"]
            else ""
        ),
    shell:
        "{params.python} -m edge_ai_lib.scenarios.inference_client {params.wrapper} {params.compiler_class} "
        "edge_ai_lib.runtimeprotocols.network.NetworkProtocol {params.runtime_class} {params.dataset_class} "
        "{params.report_dir} {wildcards.board} --model-path {input.model} "
        "--compiled-model-path {input.compiled} --skip-compilation --save-model-path {params.received} "
        "--dataset-root {params.dataset_root} --no-download-dataset --num-threads {threads} "
        "--warmup {params.settings[warmup]} {params.max_samples} {params.board_arguments} "
        "{params.model_arguments} {params.compiler_arguments} {params.runtime_arguments} > {log} 2>&1"
