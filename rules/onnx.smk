rule export_onnx:
    input:
        model=lambda wildcards: model_file(wildcards.model),
    output:
        onnx_file("{model}"),
    log:
        "results/logs/export_onnx/{model}.log",
    conda:
        "../workflow/envs/edge-ai.yaml"
    params:
        python=PYTHON,
        spec=lambda wildcards: spec(
            model=model_part(wildcards.model, model_file(wildcards.model)),
            options={"onnx_path": onnx_file(wildcards.model)},
        ),
    shell:
        "exec {params.python:q} -m edge_ai_lib.scenarios.onnx_export --spec {params.spec:q} "
        "> {log:q} 2>&1"
