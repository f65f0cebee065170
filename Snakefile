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
include: "rules/compile.smk"
include: "rules/benchmark.smk"
include: "rules/report.smk"


rule all:
    input:
        rules.render_report.output,
