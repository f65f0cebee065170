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
        settings=benchmark_settings(),
        max_samples=max_samples_option(),
        report_dir=lambda wildcards: f"results/benchmarks/{wildcards.model}/{wildcards.compiler}",
        received=lambda wildcards: f"results/boards/{wildcards.board}/received-model."
        f"{compiled_suffix(wildcards.compiler)}",
    shell:
        "exec {params.python:q} -m edge_ai_lib.scenarios.inference_client {params.wrapper:q} "
        "{params.compiler_class:q} edge_ai_lib.runtimeprotocols.network.NetworkProtocol "
        "{params.runtime_class:q} {params.dataset_class:q} {params.report_dir:q} {wildcards.board:q} "
        "--board-name {wildcards.board:q} --board-lock-timeout {params.settings[board_lock_timeout]:q} "
        "--model-path {input.model:q} --compiled-model-path {input.compiled:q} --skip-compilation "
        "--save-model-path {params.received:q} --dataset-root {params.dataset_root:q} "
        "--no-download-dataset --num-threads {threads:q} --warmup {params.settings[warmup]:q} "
        "{params.max_samples:q} {params.board_arguments:q} {params.model_arguments:q} "
        "{params.compiler_arguments:q} {params.runtime_arguments:q} > {log:q} 2>&1"
