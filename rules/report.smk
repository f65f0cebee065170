rule render_report:
    input:
        benchmark_results(),
    output:
        "results/report.html",
    log:
        "results/logs/render_report.log",
    conda:
        "../workflow/envs/edge-ai.yaml"
    params:
        python=PYTHON,
    shell:
        "exec {params.python:q} -m edge_ai_lib.scenarios.render_report {output:q} {input:q} "
        "> {log:q} 2>&1"
