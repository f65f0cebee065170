rule render_report:
    input:
        benchmark_results(),
    output:
        html="results/report.html",
        summary_json="results/summary.json",
        summary_csv="results/summary.csv",
    log:
        "results/logs/render_report.log",
    shell:
        f"exec {PYTHON} -m edge_ai_lib.scenarios.render_report {{output.html:q}} {{input:q}} "
        "--summary-json {output.summary_json:q} --summary-csv {output.summary_csv:q} > {log:q} 2>&1"
