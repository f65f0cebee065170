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
        spec=lambda wildcards: spec(
            model=model_part(wildcards.model, model_file(wildcards.model)),
            compiler=compiler_part(
                wildcards.compiler, compiled_file(wildcards.model, wildcards.compiler)
            ),
            dataset=dataset_part(dataset_of(wildcards.model)),
            options={
                "source_model": compiler_source(wildcards.model, wildcards.compiler)
            },
        ),
    shell:
        "exec {params.python:q} -m edge_ai_lib.scenarios.model_compilation --spec {params.spec:q} "
        "> {log:q} 2>&1"
