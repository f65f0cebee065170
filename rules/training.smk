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
        wrapper=lambda wildcards: config["models"][wildcards.model]["wrapper"],
        dataset_class=lambda wildcards: config["datasets"][
            dataset_of(wildcards.model)
        ]["class"],
        dataset_root=lambda wildcards: f"results/datasets/{dataset_of(wildcards.model)}",
        training=lambda wildcards: config["models"][wildcards.model]["training"],
        arguments=lambda wildcards: cli_args(
            config["models"][wildcards.model].get("args")
        ),
        source=lambda wildcards: model_source_hash(wildcards.model),
        logdir=lambda wildcards: f"results/models/{wildcards.model}/logs-{wildcards.extension}",
    shell:
        "exec {params.python:q} -m edge_ai_lib.scenarios.model_training {params.wrapper:q} "
        "{params.dataset_class:q} --logdir {params.logdir:q} --dataset-root {params.dataset_root:q} "
        "--no-download-dataset --model-path {output.model:q} "
        "--batch-size {params.training[batch_size]:q} "
        "--learning-rate {params.training[learning_rate]:q} "
        "--num-epochs {params.training[num_epochs]:q} {params.arguments:q} > {log:q} 2>&1"
