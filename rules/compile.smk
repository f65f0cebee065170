rule tune_model:
    input:
        source=lambda wildcards: compiler_source(wildcards.model, wildcards.compiler),
    output:
        directory(PATHS["tuning"]),
    log:
        "results/logs/tune_model/{model}-{compiler}.log",
    benchmark:
        "results/logs/tune_model/{model}-{compiler}.benchmark.tsv"
    params:
        spec=tuning_spec,
    shell:
        scenario_command("model_tuning", redirect="2>&1 | tee {log:q}")


rule compile_model:
    input:
        model=lambda wildcards: model_file(wildcards.model),
        source=lambda wildcards: compiler_source(wildcards.model, wildcards.compiler),
        dataset=lambda wildcards: dataset_summary(wildcards.model),
        tuning=tuning_input,
    output:
        PATHS["compilation"],
    log:
        "results/logs/compile_model/{model}-{compiler}.{suffix}.log",
    benchmark:
        "results/logs/compile_model/{model}-{compiler}.{suffix}.benchmark.tsv"
    params:
        spec=compilation_spec,
    shell:
        scenario_command("model_compilation")
