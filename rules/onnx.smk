rule export_onnx:
    input:
        model=lambda wildcards: model_file(wildcards.model),
    output:
        PATHS["onnx"],
    log:
        "results/logs/export_onnx/{model}.log",
    params:
        spec=export_spec,
    shell:
        scenario_command("onnx_export")
