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
        "{params.python} -m edge_ai_lib.scenarios.render_report {output} {input} > {log} 2>&1"
