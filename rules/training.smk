rule train_model:
    input:
        dataset=lambda wildcards: dataset_summary(wildcards.model),
    output:
        model=PATHS["model"],
        summary=PATHS["training_summary"],
    log:
        "results/logs/train_model/{model}.{extension}.log",
    benchmark:
        "results/logs/train_model/{model}.{extension}.benchmark.tsv"
    params:
        source=model_source_hash,
        spec=training_spec,
    shell:
        scenario_command("model_training")
