rule prepare_dataset:
    output:
        "results/datasets/{dataset}/summary.json",
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    conda:
        "../workflow/envs/edge-ai.yaml"
    params:
        python=PYTHON,
        dataset_class=lambda wildcards: config["datasets"][wildcards.dataset]["class"],
        arguments=lambda wildcards: cli_args(
            config["datasets"][wildcards.dataset].get("args")
        ),
        root=lambda wildcards: f"results/datasets/{wildcards.dataset}",
    shell:
        "exec {params.python:q} -m edge_ai_lib.scenarios.dataset_preparation {params.dataset_class:q} "
        "--dataset-root {params.root:q} {params.arguments:q} > {output:q} 2> {log:q}"
