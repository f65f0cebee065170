rule train_model:
    input:
        dataset=lambda wildcards: dataset_summary(wildcards.model),
    output:
        model="results/models/{model}/model.{extension}",
        summary="results/models/{model}/logs-{extension}/training.json",
    log:
        "results/logs/train_model/{model}.{extension}.log",
    benchmark:
        "results/logs/train_model/{model}.{extension}.benchmark.tsv"
    wildcard_constraints:
        extension="keras|pt",
    conda:
        "../workflow/envs/edge-ai.yaml"
    params:
        python=PYTHON,
        source=lambda wildcards: model_source_hash(wildcards.model),
        spec=lambda wildcards: spec(
            model=model_part(wildcards.model, model_file(wildcards.model)),
            dataset=dataset_part(dataset_of(wildcards.model)),
            options={
                **config["models"][wildcards.model]["training"],
                "logdir": f"results/models/{wildcards.model}/logs-{wildcards.extension}",
            },
        ),
    shell:
        "exec {params.python:q} -m edge_ai_lib.scenarios.model_training --spec {params.spec:q} "
        "> {log:q} 2>&1"
