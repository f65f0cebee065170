rule check_onnx_conversions:
    output:
        rst="results/onnx/support-grid.rst",
        json="results/onnx/support-grid.json",
        models=directory("results/onnx/models"),
    log:
        "results/logs/check_onnx_conversions.log",
    benchmark:
        "results/logs/check_onnx_conversions.benchmark.tsv"
    params:
        source=onnx_grid_source_hash,
        spec=onnx_grid_spec,
    shell:
        scenario_command("onnx_conversion")
