# edge-ai-tester: `snakemake --cores N results/report.html` builds every configured run and the report.
from snakemake.utils import min_version

min_version("9.0")


include: "rules/common.smk"


# A config given with --configfile replaces the default one (Snakemake would otherwise merge them).
if not workflow.overwrite_configfiles:
    check_config_syntax(DEFAULT_CONFIG)

    configfile: DEFAULT_CONFIG


# The schema, then the class paths and their arguments: a mistake stops here, one line per problem.
check_config(CONFIG_SCHEMA)


include: "rules/datasets.smk"
include: "rules/training.smk"
include: "rules/onnx.smk"
include: "rules/onnx_grid.smk"
include: "rules/compile.smk"
include: "rules/benchmark.smk"
include: "rules/report.smk"
include: "rules/compare.smk"


# On a cluster (profiles/slurm, profiles/cluster-generic) these run on the submitting node: datasets are
# downloaded where the network is, boards are reached from there (one benchmark per board at a time),
# and the report is light. Training, ONNX export, tuning and compilation are submitted as cluster jobs.
localrules:
    all,
    prepare_dataset,
    benchmark_board,
    render_report,
    compare_runs,


rule all:
    input:
        rules.render_report.output,
