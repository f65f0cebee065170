rule prepare_dataset:
    output:
        PATHS["dataset_summary"],
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    params:
        spec=dataset_spec,
    shell:
        scenario_command("dataset_preparation", redirect="> {output:q} 2> {log:q}")
