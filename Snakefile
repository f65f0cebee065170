# edge-ai-tester: `snakemake --cores N results/report.html` builds every configured run and the report.
from snakemake.utils import min_version, validate

min_version("9.0")


# A config given with --configfile replaces the default one (Snakemake would otherwise merge them).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/datasets.smk"
include: "rules/training.smk"
include: "rules/onnx.smk"
include: "rules/compile.smk"
include: "rules/benchmark.smk"
include: "rules/report.smk"


rule all:
    input:
        "results/report.html",
