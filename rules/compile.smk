rule compile_model:
    input:
        model=lambda wildcards: model_file(wildcards.model),
        source=lambda wildcards: compiler_source(wildcards.model, wildcards.compiler),
        dataset=lambda wildcards: dataset_summary(wildcards.model),
    output:
        "results/compiled/{model}/{compiler}/model.{suffix}",
    log:
        "results/logs/compile_model/{model}-{compiler}.{suffix}.log",
    benchmark:
        "results/logs/compile_model/{model}-{compiler}.{suffix}.benchmark.tsv"
    conda:
        "../workflow/envs/edge-ai.yaml"
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
        dataset_class=lambda wildcards: config["datasets"][
            dataset_of(wildcards.model)
        ]["class"],
        dataset_root=lambda wildcards: f"results/datasets/{dataset_of(wildcards.model)}",
    shell:
        "exec {params.python:q} -m edge_ai_lib.scenarios.model_compilation {params.wrapper:q} "
        "{params.compiler_class:q} {params.dataset_class:q} --model-path {input.model:q} "
        "--source-model {input.source:q} --compiled-model-path {output:q} "
        "--dataset-root {params.dataset_root:q} --no-download-dataset "
        "{params.model_arguments:q} {params.compiler_arguments:q} > {log:q} 2>&1"
