rule export_onnx:
    input:
        model=lambda wildcards: model_file(wildcards.model),
    output:
        "results/models/{model}/model.onnx",
    log:
        "results/logs/export_onnx/{model}.log",
    conda:
        "../workflow/envs/edge-ai.yaml"
    params:
        python=PYTHON,
        wrapper=lambda wildcards: config["models"][wildcards.model]["wrapper"],
        arguments=lambda wildcards: cli_args(
            config["models"][wildcards.model].get("args")
        ),
    shell:
        "exec {params.python:q} -m edge_ai_lib.scenarios.onnx_export {params.wrapper:q} "
        "--model-path {input.model:q} --onnx-path {output:q} {params.arguments:q} > {log:q} 2>&1"
