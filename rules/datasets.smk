rule prepare_dataset:
    output:
        "results/datasets/{dataset}/summary.json",
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    conda:
        "../workflow/envs/edge-ai.yaml"
    params:
        python=PYTHON,
        spec=lambda wildcards: spec(dataset=dataset_part(wildcards.dataset)),
    shell:
        "exec {params.python:q} -m edge_ai_lib.scenarios.dataset_preparation --spec {params.spec:q} "
        "> {output:q} 2> {log:q}"
