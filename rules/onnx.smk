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
        "{params.python} -m edge_ai_lib.scenarios.onnx_export {params.wrapper} --model-path {input.model} "
        "--onnx-path {output} {params.arguments} > {log} 2>&1"
