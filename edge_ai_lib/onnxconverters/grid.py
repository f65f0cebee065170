"""The ONNX support grid as files: RST (the seed's table), JSON beside it (every number), and an HTML
fragment for the report, cells coloured by status."""

from __future__ import annotations

import json
from pathlib import Path

from edge_ai_lib.core.files import atomic_write_text
from edge_ai_lib.core.onnxconversion import ATOL, RTOL, Cell, Grid, Status

DEFAULT_CONVERSIONS = (
    "edge_ai_lib.onnxconverters.pytorch.PyTorchONNXConversion",
    "edge_ai_lib.onnxconverters.tensorflow.TensorFlowONNXConversion",
)

# Background colours of the HTML cells, by status (green: within parity, amber: ran but differs, red: broke).
COLOURS = {
    Status.PASSED: "#c8e6c9", Status.OK: "#c8e6c9", Status.MISMATCH: "#ffe0b2", Status.FAILED: "#ffcdd2",
    Status.CRASHED: "#ef9a9a", Status.TIMEOUT: "#ef9a9a", Status.OUT_OF_MEMORY: "#ef9a9a",
    Status.SKIPPED: "#eeeeee", Status.NOT_IMPLEMENTED: "#eeeeee",
}
TOLERANCE = f"|a - b| <= {ATOL:g} + {RTOL:g}·|b|"


def json_path(rst_path: Path) -> Path:
    """GRID.json beside GRID.rst."""
    return Path(rst_path).with_suffix(".json")


def cell_text(cell: Cell) -> str:
    """A cell in a few words: the status, and for outputs compared the largest errors and top-1 agreement."""
    if cell.parity is not None:
        return (f"{cell.status.value}: abs {cell.parity.max_abs_error:.1e}, rel {cell.parity.max_rel_error:.1e}, "
                f"top-1 {cell.parity.top1_agreement:.0%}")
    return cell.status.value


def _rst_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|").replace("_", "\\_")


def render_rst(grid: Grid) -> str:
    """The grid as an RST list-table, then what went wrong in each failed cell."""
    lines = ["ONNX conversion support grid", "=" * 28, "",
             f"Each model is built with a fixed seed, run on inputs at its own scale by its framework, exported "
             f"to ONNX, and read by each column. Numeric cells compare the outputs (logits) with the "
             f"framework's on the same inputs: parity means {TOLERANCE} for every output; *abs* and *rel* are "
             f"the largest absolute and relative errors, *top-1* the share of samples with the same class. "
             f"Each step ran in its own process (timeout {grid.settings.get('timeout')} s, memory cap "
             f"{grid.settings.get('memory_limit_mb')} MiB). Wall time: {grid.seconds:.0f} s.", "",
             ".. list-table::", "   :header-rows: 1", "",
             "   * - framework", "     - model"]
    lines += [f"     - {_rst_escape(column.title)}" for column in grid.columns]
    for row in grid.rows:
        lines += [f"   * - {row.framework}", f"     - {_rst_escape(row.model)}"]
        lines += [f"     - {_rst_escape(cell_text(row.cells[column.name]))}" for column in grid.columns]
    counts = grid.counts()
    lines += ["", "Models through each column (within parity where outputs are compared), of "
              f"{counts['models']}:", ""]
    lines += [f"- {_rst_escape(column.title)}: {counts[column.name]} (ran: {counts['ran'][column.name]})"
              for column in grid.columns]
    problems = [(row, column, row.cells[column.name]) for row in grid.rows for column in grid.columns
                if row.cells[column.name].message and row.cells[column.name].status is not Status.SKIPPED]
    if problems:
        lines += ["", "What went wrong", "-" * 15, ""]
        for row, column, cell in problems:
            lines.append(f"- {row.framework} {_rst_escape(row.model)}, {_rst_escape(column.title)} "
                         f"({cell.status.value}): {_rst_escape(cell.message[:600])}")
    return "\n".join(lines) + "\n"


def write_grid(grid: Grid, rst_path: Path) -> tuple[Path, Path]:
    """GRID.rst and GRID.json beside it; each written whole or not at all."""
    rst_path = Path(rst_path)
    rst_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json_path(rst_path), json.dumps(grid.to_dict(), indent=2) + "\n")
    atomic_write_text(rst_path, render_rst(grid))
    return rst_path, json_path(rst_path)


HTML_TEMPLATE = """\
<section class="onnx-grid">
<h2>ONNX conversion grid</h2>
<p>Each model exported to ONNX and read by each column; numeric cells compare logits with the source
framework on the same inputs (parity: {{ tolerance }}). {{ models }} models, built in {{ seconds }} s.</p>
<table class="onnx-grid-table" style="border-collapse: collapse">
<thead><tr><th>framework</th><th>model</th>{% for column in columns %}<th>{{ column.title }}</th>{% endfor %}</tr></thead>
<tbody>
{%- for row in rows %}
<tr><td>{{ row.framework }}</td><td title="{{ row.description }}">{{ row.model }}</td>
{%- for cell in row.cells %}<td class="onnx-{{ cell.css }}" style="background: {{ cell.colour }}; padding: 2px 6px"
 title="{{ cell.title }}">{{ cell.text }}</td>{% endfor %}</tr>
{%- endfor %}
</tbody>
<tfoot><tr><th colspan="2">through the column</th>{% for count in counts %}<th>{{ count }}</th>{% endfor %}</tr></tfoot>
</table>
</section>
"""


def render_html(grid: Grid) -> str:
    """The grid as an HTML fragment (a <section>) for the report: cells coloured by status, each error in
    its cell's tooltip, the counts in the footer."""
    import jinja2

    counts = grid.counts()
    rows = []
    for row in grid.rows:
        cells = []
        for column in grid.columns:
            cell = row.cells[column.name]
            title = cell.message or (f"max abs {cell.parity.max_abs_error:.3g}, max rel "
                                     f"{cell.parity.max_rel_error:.3g}, top-1 {cell.parity.top1_agreement:.0%}"
                                     if cell.parity else cell.status.value)
            text = cell.status.value if cell.parity is None else \
                f"{cell.status.value} ({cell.parity.max_abs_error:.0e})"
            cells.append({"text": text, "title": title, "colour": COLOURS[cell.status],
                          "css": cell.status.name.lower().replace("_", "-")})
        rows.append({"framework": row.framework, "model": row.model, "description": row.description,
                     "cells": cells})
    template = jinja2.Environment(autoescape=True).from_string(HTML_TEMPLATE)
    return template.render(tolerance=TOLERANCE, models=counts["models"], seconds=f"{grid.seconds:.0f}",
                           columns=grid.columns, rows=rows,
                           counts=[f"{counts[c.name]} / {counts['models']}" for c in grid.columns])
