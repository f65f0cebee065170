rule render_report:
    input:
        results=benchmark_results(),
        references=reference_results(),
        onnx_grid=onnx_grid_in_report(),
    output:
        html="results/report.html",
        summary_json="results/summary.json",
        summary_csv="results/summary.csv",
    log:
        "results/logs/render_report.log",
    params:
        comparison=json.dumps(comparison_settings(), sort_keys=True),
        tolerance=report_settings()["accuracy_tolerance"],
    shell:
        f"exec {PYTHON} -m edge_ai_lib.scenarios.render_report {{output.html:q}} {{input.results:q}} "
        "--references {input.references:q} --accuracy-tolerance {params.tolerance} "
        "--summary-json {output.summary_json:q} --summary-csv {output.summary_csv:q} "
        "--comparison {params.comparison:q} --onnx-grid {input.onnx_grid:q} > {log:q} 2>&1"
