rule compile_model:
    input:
        model=lambda wildcards: model_file(wildcards.model),
        source=lambda wildcards: compiler_source(wildcards.model, wildcards.compiler),
        dataset=lambda wildcards: dataset_summary(wildcards.model),
    output:
        PATHS["compiled"],
    log:
        "results/logs/compile_model/{model}-{compiler}.{suffix}.log",
    benchmark:
        "results/logs/compile_model/{model}-{compiler}.{suffix}.benchmark.tsv"
    params:
        spec=compilation_spec,
    shell:
        scenario_command("model_compilation")
